"""`@experiment` in-process: same branch records, summary and MLflow runs as the workflow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from mahsm.experiments.configs import ExperimentConfig
from mahsm.experiments.local import experiment
from mahsm.experiments.models import BranchStatus


async def test_decorated_function_runs_every_config_on_every_row_and_logs(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    @experiment(
        configs=[{"label": "right", "inputs": {"k": 1}}, {"label": "off", "inputs": {"k": 2}},
                 {"label": "broken", "inputs": {"k": 0}}],
        dataset=[{"inputs": {"x": 3}, "expected": "3"}, {"inputs": {"x": 5}, "expected": "5"}],
        metrics=[{"kind": "exact_match"}],
        tracking_uri=uri,
    )  # fmt: skip
    async def multiply(config: ExperimentConfig, inputs: dict[str, Any]) -> str:
        return str(inputs["x"] // config.inputs["k"] * 1)

    state = await multiply.run()
    summary = {s.label: s for s in state.summary}
    assert summary["right"].mean_score == 1.0 and summary["off"].mean_score == 0.0
    assert summary["broken"].errors == 2
    broken = next(b for b in state.branches if b.config.label == "broken")
    assert broken.status == BranchStatus.FAILED and broken.error is not None
    assert broken.error.type == "ZeroDivisionError" and "Traceback" in broken.error.traceback
    assert state.winner == summary["right"].config_id
    assert state.mlflow.status == "synced" and state.mlflow.runs == 6
    runs = MlflowClient(tracking_uri=uri).search_runs([str(state.mlflow.experiment_id)])
    assert len(runs) == 9  # 3 config parents, 6 row runs


async def test_round_robin_calls_rotate_configs() -> None:
    @experiment(configs=[{"label": "a"}, {"label": "b"}], strategy="round_robin")
    async def who(config: ExperimentConfig, inputs: dict[str, Any]) -> str:
        return str(config.label)

    assert [await who() for _ in range(3)] == ["a", "b", "a"]
    assert who.state.served == 3
