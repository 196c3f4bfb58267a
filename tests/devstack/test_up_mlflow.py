"""`mahsm up` runs an MLflow tracking server (UI + REST) unless MLFLOW_TRACKING_URI names one."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from mahsm.cli import stack as cli_stack
from mahsm.devstack.stack import DevStack, StackInfo
from mahsm.settings import load_settings
from tests.devstack.up_harness import (
    WORKER_PRESENT,
    Stack,
    child_pids,
    ensure_stopped,
    stop_and_assert_clean,
    wait_healthy,
)

EXAMPLE = str(Path(__file__).parents[2] / "examples" / "experiments" / "experiment.yaml")


def test_a_configured_tracking_uri_is_used_and_no_server_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAHSM_MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    stack = DevStack(load_settings(_env_file=None, data_dir=tmp_path / "data"))
    assert stack.uses_embedded_mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert not stack.uses_embedded_mlflow
    env = stack._child_env("127.0.0.1:7233", "postgresql://x@127.0.0.1/db", None)
    assert env["MAHSM_MLFLOW_TRACKING_URI"] == "http://mlflow.example:5000"
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow.example:5000"


@pytest.mark.skipif(not WORKER_PRESENT, reason="`python -m mahsm.workers` does not exist yet")
def test_up_serves_the_mlflow_ui_and_experiments_log_to_it(stack_with_mlflow: Stack) -> None:
    stack = stack_with_mlflow
    mlflow = f"http://127.0.0.1:{stack.ports['MAHSM_MLFLOW_PORT']}"
    process = stack.start()
    try:
        wait_healthy(stack, process, timeout_s=400)  # MLflow's server is slow to import
        banner = stack.output().split("MAHSM is up.")[1]
        assert banner.index("Dashboard") < banner.index("MLflow UI")
        assert f"MLflow UI     {mlflow}" in banner
        assert "mlflow" in child_pids(stack)

        ui = httpx.get(f"{mlflow}/", timeout=10)
        assert ui.status_code == 200 and "<html" in ui.text.lower()

        ran = stack.run("experiment", "run", EXAMPLE, "--wait", "--json", timeout=300)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        state = json.loads(ran.stdout)
        assert state["mlflow"]["status"] == "synced", state["mlflow"]

        found = httpx.post(
            f"{mlflow}/api/2.0/mlflow/experiments/search",
            json={"max_results": 100},
            timeout=10,
        )
        assert found.status_code == 200
        by_name = {e["name"]: e for e in found.json()["experiments"]}
        experiment = by_name[f"qa styles [{state['experiment_id']}]"]
        runs = httpx.post(
            f"{mlflow}/api/2.0/mlflow/runs/search",
            json={"experiment_ids": [experiment["experiment_id"]], "max_results": 100},
            timeout=10,
        )
        assert len(runs.json()["runs"]) == 10  # a parent per config, a nested run per row
        assert (stack.data_dir / "mlflow.db").is_file()  # the store is in the data dir

        stop_and_assert_clean(stack, process, child_pids(stack))
    finally:
        ensure_stopped(process)


def test_up_banner_prints_the_mlflow_ui_after_the_dashboard() -> None:
    info = StackInfo(
        api_url="http://127.0.0.1:8000",
        docs_url="http://127.0.0.1:8000/docs",
        temporal_address="127.0.0.1:7233",
        temporal_ui_url=None,
        database_url="postgresql://postgres@127.0.0.1:5433/mahsm",
        data_dir=Path("/d"),
        logs_dir=Path("/d/logs"),
        default_model="scripted/demo",
        mlflow_tracking_uri="http://127.0.0.1:5000",
        mlflow_ui_url="http://127.0.0.1:5000",
    )
    cli_stack.console.begin_capture()
    cli_stack._print_info(info)
    output = cli_stack.console.end_capture()
    assert "MLflow UI     http://127.0.0.1:5000" in output
    assert output.index("Dashboard") < output.index("MLflow UI")
