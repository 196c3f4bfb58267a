"""`mahsm up` gives its worker an MLflow store in the data dir (or the operator's URI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mahsm.cli import stack as cli_stack
from mahsm.devstack.stack import DevStack, StackInfo
from mahsm.settings import load_settings


def test_children_log_experiments_to_a_sqlite_store_in_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MAHSM_MLFLOW_TRACKING_URI", raising=False)
    stack = DevStack(load_settings(_env_file=None, data_dir=tmp_path / "data"))
    env = stack._child_env("127.0.0.1:7233", "postgresql://x@127.0.0.1/db", None)
    assert (
        env["MAHSM_MLFLOW_TRACKING_URI"] == f"sqlite:///{(tmp_path / 'data').resolve()}/mlflow.db"
    )

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    env = stack._child_env("127.0.0.1:7233", "postgresql://x@127.0.0.1/db", None)
    assert env["MAHSM_MLFLOW_TRACKING_URI"] == "http://mlflow.example:5000"


def test_up_banner_prints_the_mlflow_store() -> None:
    info = StackInfo(
        api_url="http://127.0.0.1:8000",
        docs_url="http://127.0.0.1:8000/docs",
        temporal_address="127.0.0.1:7233",
        temporal_ui_url=None,
        database_url="postgresql://postgres@127.0.0.1:5433/mahsm",
        data_dir=Path("/d"),
        logs_dir=Path("/d/logs"),
        default_model="scripted/demo",
        mlflow_tracking_uri="sqlite:////d/mlflow.db",
    )
    cli_stack.console.begin_capture()
    cli_stack._print_info(info)
    output = cli_stack.console.end_capture()
    assert "MLflow" in output and "sqlite:////d/mlflow.db" in output
