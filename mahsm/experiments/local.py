"""`@experiment`: the same comparison in-process, for an async function taking a config.

Not durable (nothing survives the process), but the same branch records, summary, winner
and MLflow logging as `ExperimentWorkflow`:

```python
@experiment(configs=[{"temperature": 0}, {"temperature": 0.7}], dataset=rows,
            metrics=[{"kind": "exact_match"}])
async def answer(config: ExperimentConfig, inputs: dict) -> str:
    ...

state = await answer.run()          # multi_branch / shadow: every config (on every row)
```

With `strategy="round_robin"`, `await answer(inputs)` serves one call with the next config
and returns the function's result; `answer.state` holds the branches so far.
"""

from __future__ import annotations

import asyncio
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from mahsm.experiments.configs import ExperimentConfig
from mahsm.experiments.models import (
    Branch,
    BranchError,
    BranchRole,
    BranchStatus,
    DatasetRow,
    ExperimentState,
    MetricSpec,
    MlflowSync,
    Strategy,
)
from mahsm.experiments.scoring import score, summarize, winner

Target = Callable[[ExperimentConfig, dict[str, Any]], Awaitable[Any]]


class LocalExperiment:
    """An async function under several configs; built by `experiment`."""

    def __init__(
        self,
        function: Target,
        *,
        configs: Sequence[ExperimentConfig | dict[str, Any]],
        strategy: Strategy | str,
        name: str,
        dataset: Sequence[DatasetRow | dict[str, Any]] | None,
        metrics: Sequence[MetricSpec | dict[str, Any]],
        max_concurrency: int,
        tracking_uri: str | None,
    ) -> None:
        self.function = function
        self.configs = [ExperimentConfig.model_validate(c) for c in configs]
        if not self.configs:
            raise ValueError("configs: give at least one config")
        self.strategy = Strategy(strategy)
        self.dataset = [DatasetRow.model_validate(r) for r in dataset or []]
        self.metrics = [MetricSpec.model_validate(m) for m in metrics]
        self.tracking_uri = tracking_uri
        self._slots = asyncio.Semaphore(max_concurrency)
        now = datetime.now(UTC)
        self.state = ExperimentState(
            experiment_id=f"experiment-local-{uuid.uuid4()}",
            name=name,
            strategy=self.strategy,
            created_at=now,
            updated_at=now,
            configs=self.configs,
            config_ids=[c.config_id for c in self.configs],
        )

    async def _branch(
        self, index: int, inputs: dict[str, Any], row: int | None, role: BranchRole
    ) -> tuple[Branch, Any]:
        config = self.configs[index]
        branch = Branch(
            config_id=config.config_id, config=config, index=index, row=row, role=role,
            status=BranchStatus.RUNNING, started_at=datetime.now(UTC),
        )  # fmt: skip
        self.state.branches.append(branch)
        result: Any = None
        start = time.perf_counter()
        async with self._slots:
            try:
                result = await self.function(config, dict(inputs))
            except Exception as error:  # a failing config is recorded, the others go on
                branch.status = BranchStatus.FAILED
                branch.error = BranchError(
                    type=type(error).__name__,
                    message=str(error),
                    traceback=traceback.format_exc(),
                )
            else:
                branch.status = BranchStatus.SUCCESS
                branch.output = result if isinstance(result, str) else repr(result)
                branch.value = result if isinstance(result, dict | list | int | float) else None
        branch.duration_s = time.perf_counter() - start
        branch.finished_at = datetime.now(UTC)
        if row is not None and self.metrics:
            for metric in self.metrics:
                ok = branch.status == BranchStatus.SUCCESS
                value = score(metric, branch.output or "", branch.value, self.dataset[row])
                branch.scores[metric.key] = value if ok else 0.0
        return branch, result

    async def run(self, inputs: dict[str, Any] | None = None) -> ExperimentState:
        """Every config (on every dataset row); then summary, winner and MLflow logging."""
        if self.strategy == Strategy.ROUND_ROBIN:
            raise ValueError("a round_robin experiment is called per request: await it(inputs)")
        role: BranchRole = "branch" if self.strategy == Strategy.MULTI_BRANCH else "shadow"
        rows: list[tuple[int | None, dict[str, Any]]] = [
            (i, r.inputs) for i, r in enumerate(self.dataset)
        ] or [(None, inputs or {})]
        done = await asyncio.gather(
            *(
                self._branch(i, values, row, "primary" if role == "shadow" and i == 0 else role)
                for row, values in rows
                for i in range(len(self.configs))
            )
        )
        if self.strategy == Strategy.SHADOW:
            self.state.primary = done[0][0]
        return await self.finish()

    async def __call__(self, inputs: dict[str, Any] | None = None) -> Any:
        """Round robin: serve one call with the next config; a failure is re-raised."""
        if self.strategy != Strategy.ROUND_ROBIN:
            return await self.run(inputs)
        number = self.state.served
        self.state.served += 1
        branch, result = await self._branch(
            number % len(self.configs), inputs or {}, number, "served"
        )
        if branch.error is not None:
            raise RuntimeError(f"config {branch.config_id} failed: {branch.error.message}")
        return result

    async def finish(self) -> ExperimentState:
        """Summarize, pick the winner and log to MLflow (if a tracking URI is set)."""
        key = self.metrics[0].key if self.metrics else None
        self.state.summary = summarize(
            self.configs, self.state.config_ids, self.state.branches, key
        )
        self.state.winner = winner(self.state.summary)
        if self.tracking_uri is None:
            self.state.mlflow = MlflowSync(status="off")
        else:
            from mahsm.experiments.mlflow_sync import log_experiment

            try:
                self.state.mlflow = await asyncio.to_thread(
                    log_experiment, self.state, self.tracking_uri
                )
            except Exception as error:  # the results stay in `state`; sync later
                self.state.mlflow = MlflowSync(
                    status="failed", error=f"{type(error).__name__}: {error}"
                )
        self.state.status = "completed"
        self.state.updated_at = datetime.now(UTC)
        return self.state


def experiment(
    *,
    configs: Sequence[ExperimentConfig | dict[str, Any]],
    strategy: Strategy | str = Strategy.MULTI_BRANCH,
    name: str | None = None,
    dataset: Sequence[DatasetRow | dict[str, Any]] | None = None,
    metrics: Sequence[MetricSpec | dict[str, Any]] = (),
    max_concurrency: int = 8,
    tracking_uri: str | None = None,
) -> Callable[[Target], LocalExperiment]:
    """Decorate `async def f(config, inputs)` into a `LocalExperiment` (see the module)."""

    def wrap(function: Target) -> LocalExperiment:
        return LocalExperiment(
            function,
            configs=configs,
            strategy=strategy,
            name=name or function.__name__,
            dataset=dataset,
            metrics=metrics,
            max_concurrency=max_concurrency,
            tracking_uri=tracking_uri,
        )

    return wrap
