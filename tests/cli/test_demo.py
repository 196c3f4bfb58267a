"""`mahsm demo`: on the embedded stack it starts itself (subprocess), and on a running API."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from typer.testing import CliRunner

from mahsm.cli import common as cli_common
from mahsm.cli.main import app
from mahsm.devstack.process import free_port, port_is_free
from tests.cli.api_harness import ServedApi

PORTS = ("MAHSM_API_PORT", "MAHSM_TEMPORAL_PORT", "MAHSM_TEMPORAL_UI_PORT", "MAHSM_POSTGRES_PORT")


def _assert_demo_output(output: str) -> None:
    assert "1/3  Simple task" in output
    assert "The factorial of 10 is 3628800" in output
    assert "2/3  Multi-step task with dependencies" in output
    for subtask in ("collect_sales", "compute_growth", "write_report"):
        assert subtask in output
    assert "41.7%" in output
    assert "3/3  Task with a failing branch" in output
    assert "subtask 'legacy_feed' failed" in output and "blocked" in output
    assert "This failure is expected" in output
    assert output.count("as expected") == 3 and "UNEXPECTED" not in output
    for hint in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "MAHSM_DEFAULT_MODEL"):
        assert hint in output
    assert "/namespaces/default/workflows/task-" in output


def test_demo_starts_the_embedded_stack_runs_three_tasks_and_stops_it() -> None:
    # Outside pytest's tmp tree (0700): Postgres runs as another user when we are root.
    root = Path(tempfile.mkdtemp(prefix="mahsm-demo-test-"))
    root.chmod(0o711)
    ports = {name: free_port() for name in PORTS}
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAHSM_")}
    env.update({k: str(v) for k, v in ports.items()})
    env.update(MAHSM_DATA_DIR=str(root / "data"), COLUMNS="200")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "mahsm.cli.main", "demo"],
            env=env,
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert "starting the embedded stack" in output
        _assert_demo_output(output)
        assert result.stdout.rstrip().endswith("Stack stopped.")
        for name, port in ports.items():
            assert port_is_free("127.0.0.1", port), f"{name}={port} still bound"
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def test_demo_uses_a_running_api(api: ServedApi) -> None:
    cli_common.console.width = 200
    result = await asyncio.to_thread(CliRunner().invoke, app, ["demo", "--api", api.url])

    assert result.exit_code == 0, result.output
    assert f"Using the MAHSM API at {api.url}" in result.output
    assert "embedded stack" not in result.output
    _assert_demo_output(result.output)


def test_demo_with_an_unreachable_api_exits_5() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(app, ["demo", "--api", url])

    assert result.exit_code == 5, result.output
    assert "no MAHSM API answers" in result.output
