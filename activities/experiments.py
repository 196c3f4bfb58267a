"""Activities of `ExperimentWorkflow`: scoring a branch, and logging to MLflow.

Scoring runs here, not in the workflow, because a `function` metric runs user code and a
claim-checked output must be read from the blob store. MLflow logging is idempotent (runs
are found again by their tags), so a retried attempt adds no second run.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from mahsm.activities.blobs import BlobStore
from mahsm.contracts.task import BlobRef
from mahsm.experiments.models import DatasetRow, ExperimentState, MetricSpec, MlflowSync
from mahsm.experiments.scoring import score
from mahsm.redaction import redact_text
from mahsm.settings import Settings

MLFLOW_OUTPUT_CHARS = 1_000_000
"""A claim-checked output goes to its MLflow artifact up to this many characters."""


class ScoreRequest(BaseModel):
    """Input of `experiment_score`: one branch's output and its row."""

    output: str | None = None
    output_ref: BlobRef | None = None
    value: Any = None
    row: DatasetRow
    metrics: list[MetricSpec]


class ScoreResult(BaseModel):
    """Scores by metric name, in [0, 1]."""

    scores: dict[str, float] = Field(default_factory=dict)


class MlflowLogRequest(BaseModel):
    """Input of `experiment_mlflow_log`: the experiment's state to log."""

    state: ExperimentState


class ExperimentActivities:
    """Scoring and MLflow logging for experiments; built once per worker."""

    def __init__(self, *, settings: Settings, blobs: BlobStore) -> None:
        self._settings = settings
        self._blobs = blobs

    @activity.defn(name="experiment_score")
    async def score(self, request: ScoreRequest) -> ScoreResult:
        """Score one output under each metric; a metric function's error fails the activity."""
        output = request.output or ""
        if request.output_ref is not None:
            output = await self._blobs.get_text(request.output_ref)
        scores = {}
        for metric in request.metrics:
            try:
                scores[metric.key] = score(metric, output, request.value, request.row)
            except ImportError as error:
                raise ApplicationError(
                    f"metric '{metric.key}': {error}", type="MetricNotFound", non_retryable=True
                ) from None
        return ScoreResult(scores=scores)

    @activity.defn(name="experiment_mlflow_log")
    async def log_mlflow(self, request: MlflowLogRequest) -> MlflowSync:
        """Create or update the experiment's MLflow runs (idempotent; see `mlflow_sync`)."""
        from mahsm.experiments.mlflow_sync import log_experiment

        uri = self._settings.mlflow_uri()
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()  # the activity's, for heartbeats from the thread

        def beat(runs: int) -> None:
            loop.call_soon_threadsafe(activity.heartbeat, runs, context=context)

        texts = {
            branch.key: (await self._blobs.get_text(branch.output_ref))[:MLFLOW_OUTPUT_CHARS]
            for branch in request.state.branches
            if branch.output_ref is not None
        }
        try:
            return await asyncio.to_thread(log_experiment, request.state, uri, beat, texts)
        except Exception as error:  # MLflow raises many kinds; all mean "not logged yet"
            raise ApplicationError(
                "MLflow logging failed: "
                + redact_text(f"{type(error).__name__}: {error}")[:1000]
                + "; the results stay in MAHSM, retry with `mahsm experiment sync <id>`",
                type="MlflowUnavailable",
            ) from None
