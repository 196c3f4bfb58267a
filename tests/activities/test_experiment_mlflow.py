"""MLflow logging of experiments, on a real MLflow store (SQLite in a temp dir)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from mlflow import MlflowClient

from mahsm.contracts.task import Usage
from mahsm.experiments.configs import ExperimentConfig
from mahsm.experiments.mlflow_sync import TAG_BRANCH, log_experiment
from mahsm.experiments.models import (
    Branch,
    BranchStatus,
    ExperimentState,
    Strategy,
)


def _state() -> ExperimentState:
    now = datetime.now(UTC)
    configs = [
        ExperimentConfig(model="openai/gpt-4o-mini", temperature=0.2),
        ExperimentConfig(model="scripted/b"),
    ]
    branches = [
        Branch(
            config_id=c.config_id,
            config=c,
            index=i,
            status=BranchStatus.SUCCESS if i == 0 else BranchStatus.FAILED,
            output="hello" if i == 0 else None,
            duration_s=0.5,
            usage=Usage(input_tokens=3, output_tokens=2, cost_usd=0.001),
            task_ids=[f"task-x.{c.config_id}"],
        )
        for i, c in enumerate(configs)
    ]
    return ExperimentState(
        experiment_id=f"experiment-{uuid.uuid4()}",
        name="mlflow test",
        strategy=Strategy.MULTI_BRANCH,
        status="completed",
        created_at=now,
        updated_at=now,
        configs=configs,
        config_ids=[c.config_id for c in configs],
        branches=branches,
    )


def test_runs_params_metrics_artifacts_and_no_duplicate_on_retry(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    state = _state()
    client = MlflowClient(tracking_uri=uri)
    # An attempt that crashed right after creating the first branch's run:
    first = log_experiment(state.model_copy(update={"branches": []}), uri)
    assert first.experiment_id is not None
    client.create_run(first.experiment_id, tags={TAG_BRANCH: state.branches[0].key})

    synced = log_experiment(state, uri)
    again = log_experiment(state, uri)  # a retried activity, or `mahsm experiment sync`

    assert synced.experiment_id == again.experiment_id == first.experiment_id
    assert (synced.runs, again.runs) == (2, 2)
    runs = client.search_runs([synced.experiment_id])
    assert len(runs) == 2
    ok = next(r for r in runs if r.data.tags[TAG_BRANCH] == state.branches[0].key)
    assert ok.data.params["model"] == "openai/gpt-4o-mini"
    assert ok.data.params["temperature"] == "0.2"
    assert ok.data.metrics["latency_s"] == 0.5 and ok.data.metrics["cost_usd"] == 0.001
    assert ok.data.tags["mahsm.experiment_id"] == state.experiment_id
    assert ok.info.status == "FINISHED"
    text = client.download_artifacts(ok.info.run_id, "outputs.json", str(tmp_path))
    assert '"output": "hello"' in Path(text).read_text()
    failed = next(r for r in runs if r is not ok)
    assert failed.info.status == "FAILED" and failed.data.metrics["success"] == 0.0
    experiment = client.get_experiment(synced.experiment_id)
    assert experiment.name == f"mlflow test [{state.experiment_id}]"
