"""CLI output: ids, URLs and cursors stay whole, the model is named, Ctrl-C is explained."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result
from rich.console import Console
from rich.panel import Panel
from rich.text import Text
from typer.testing import CliRunner

from mahsm.cli import common as cli_common
from mahsm.cli import stack as cli_stack
from mahsm.cli.demo import REAL_MODEL_HINT, SCENARIOS, print_summary
from mahsm.cli.live import task_table
from mahsm.cli.main import app
from mahsm.client import MahsmClient
from mahsm.contracts.task import (
    Subtask,
    SubtaskResult,
    SubtaskState,
    SubtaskStatus,
    TaskState,
    TaskStatus,
    Usage,
)
from mahsm.devstack.stack import StackInfo
from tests.cli.api_harness import FACTORIAL, SALES, UI_URL, ServedApi

MISSING = "task-00000000-0000-0000-0000-000000000000"


@pytest.fixture(autouse=True)
def narrow_console() -> None:
    """80 columns: what a pipe or a CI log gets."""
    for console in (cli_common.console, cli_common.errors, cli_stack.console, cli_stack.errors):
        console.width = 80


async def mahsm(*args: str, env: dict[str, str] | None = None) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


def _line_with(output: str, text: str) -> str:
    return next(line for line in output.splitlines() if text in line)


async def test_ids_urls_and_cursors_are_never_wrapped_or_cut(api: ServedApi) -> None:
    submitted = await mahsm("submit", FACTORIAL, "--user", "narrow", "--api", api.url)
    assert submitted.exit_code == 0, submitted.output
    task_id = _line_with(submitted.output, "Submitted ").split()[1]
    assert len(task_id) == len(MISSING)
    link = f"{UI_URL}/namespaces/default/workflows/{task_id}"
    assert len(link) > 80 and link in _line_with(submitted.output, "Temporal UI:")
    assert f"mahsm status {task_id}" in submitted.output
    async with MahsmClient.rest(api.url) as client:
        await client.submit(FACTORIAL, user_id="narrow")
        await client.wait(task_id, poll_s=0.1, timeout_s=60)

    status = await mahsm("status", task_id, "--api", api.url)
    shown = _line_with(status.output, "Temporal UI:").split()[-1]
    assert shown.startswith("http") and shown.endswith(f"/namespaces/default/workflows/{task_id}")

    listed = await mahsm("list", "--user", "narrow", "--limit", "1", "--api", api.url)
    assert listed.exit_code == 0, listed.output
    assert any(
        line.split()[:1] == [f"{t}"]
        for line in listed.output.splitlines()
        for t in [line.split()[0] if line.split() else ""]
        if t.startswith("task-") and len(t) == len(MISSING)
    )
    cursor = _line_with(listed.output, "--cursor").split("--cursor ")[1].strip()
    more = await mahsm("list", "--user", "narrow", "--cursor", cursor, "--api", api.url)
    assert more.exit_code == 0, more.output


async def test_the_model_is_shown_and_a_shell_default_is_called_unused(api: ServedApi) -> None:
    chosen = await mahsm("submit", FACTORIAL, "--model", "scripted/demo", "--api", api.url)
    assert "Model: scripted/demo" in chosen.output, chosen.output

    shell = {"MAHSM_DEFAULT_MODEL": "openai/gpt-4o-mini"}
    defaulted = await mahsm("submit", FACTORIAL, "--api", api.url, env=shell)
    assert defaulted.exit_code == 0, defaulted.output
    assert "MAHSM_DEFAULT_MODEL=openai/gpt-4o-mini in this shell is not used" in " ".join(
        defaulted.output.split()
    )
    task_id = _line_with(defaulted.output, "Submitted ").split()[1]
    async with MahsmClient.rest(api.url) as client:
        await client.wait(task_id, poll_s=0.1, timeout_s=60)
    # The model the API reports, or null: never an empty model id.
    as_json = await mahsm("status", task_id, "--json", "--api", api.url)
    assert json.loads(as_json.output)["model"] != ""
    help_text = " ".join((await mahsm("submit", "--help")).output.split())
    assert "MAHSM_DEFAULT_MODEL" in help_text and "not in this shell" in help_text


async def test_not_found_points_at_mahsm_list(api: ServedApi) -> None:
    result = await mahsm("status", MISSING, "--api", api.url)
    assert result.exit_code == 3
    assert "`mahsm list`" in result.output and "GET /tasks" not in result.output


def test_a_bad_log_level_exits_2_naming_the_variable(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["up", "--data-dir", str(tmp_path)], env={"MAHSM_LOG_LEVEL": "LOUD"}
    )
    assert result.exit_code == 2, result.output
    assert (
        "MAHSM_LOG_LEVEL" in result.output
        and result.exception is None
        or isinstance(result.exception, SystemExit)
    )
    assert not (tmp_path / "logs").exists()


async def test_ctrl_c_while_following_exits_130_and_says_the_task_goes_on(
    api: ServedApi,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAHSM_")}
    follower = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mahsm.cli.main", "submit", SALES, "--wait", "--api", api.url,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**env, "COLUMNS": "80"},
    )  # fmt: skip
    assert follower.stdout is not None
    seen = b""
    while b"Submitted" not in seen:
        seen += await asyncio.wait_for(follower.stdout.readline(), 30)
    follower.send_signal(signal.SIGINT)
    rest, _ = await asyncio.wait_for(follower.communicate(), 30)
    output = (seen + rest).decode()
    task_id = output.split("Submitted ", 1)[1].split()[0]
    assert follower.returncode == 130, output
    assert "the task goes on" in output
    assert f"mahsm status {task_id}" in output and f"mahsm cancel {task_id}" in output
    async with MahsmClient.rest(api.url) as client:
        final = await client.wait(task_id, poll_s=0.2, timeout_s=60)
    assert final.status == TaskStatus.COMPLETED


def _render(state: TaskState) -> str:
    console = Console(width=160, record=True)
    console.print(task_table(state))
    return console.export_text()


def test_a_running_subtask_shows_its_pool_elapsed_time_and_usage_so_far() -> None:
    now = datetime.now(UTC)
    subtask = Subtask(
        id="collect", description="Collect the figures", required_capabilities=["data_analysis"]
    )
    running = SubtaskResult(
        status=SubtaskStatus.RUNNING,
        pool="mahsm-pool.data_analysis",
        started_at=now - timedelta(seconds=12),
        attempts=2,
    )
    state = TaskState(
        task_id=MISSING,
        description="Collect",
        status=TaskStatus.RUNNING,
        created_at=now,
        updated_at=now,
        subtasks=[SubtaskState(subtask=subtask, result=running)],
    )
    text = _render(state)
    assert "pool mahsm-pool.data_analysis" in text
    assert "running for 12s, attempt 2" in text
    assert "model: the workers' default" in text
    running.agent = "worker-1@host"
    running.usage = Usage(input_tokens=1000, output_tokens=234, total_tokens=1234)
    text = _render(state)
    assert "worker-1@host" in text and "1,234" in text


def test_up_banner_names_the_default_model_and_keeps_urls_whole() -> None:
    long_dir = Path("/tmp") / ("d" * 90)
    info = StackInfo(
        api_url="http://127.0.0.1:8000",
        docs_url="http://127.0.0.1:8000/docs",
        temporal_address="127.0.0.1:7233",
        temporal_ui_url="http://127.0.0.1:8233",
        database_url="postgresql://postgres@127.0.0.1:5433/mahsm",
        data_dir=long_dir,
        logs_dir=long_dir / "logs",
        default_model="openai/gpt-4o-mini",
    )
    cli_stack.console.begin_capture()
    cli_stack._print_info(info)
    output = cli_stack.console.end_capture()
    assert "Default model" in output and "openai/gpt-4o-mini" in output
    assert str(long_dir / "logs") in output


def test_up_banner_prints_the_dashboard_url_first() -> None:
    info = StackInfo(
        api_url="http://127.0.0.1:8000",
        docs_url="http://127.0.0.1:8000/docs",
        temporal_address="127.0.0.1:7233",
        temporal_ui_url="http://127.0.0.1:8233",
        database_url="postgresql://postgres@127.0.0.1:5433/mahsm",
        data_dir=Path("/tmp/data"),
        logs_dir=Path("/tmp/data/logs"),
        default_model="scripted/demo",
    )
    cli_stack.console.begin_capture()
    cli_stack._print_info(info)
    output = cli_stack.console.end_capture()
    urls = re.findall(r"https?://\S+", output)
    assert urls[0] == "http://127.0.0.1:8000/ui/"
    assert output.splitlines()[1].split() == ["Dashboard", "http://127.0.0.1:8000/ui/"]


def test_demo_summary_keeps_task_ids_whole() -> None:
    task_id = MISSING.replace("0000", "abcd")
    cli_common.console.begin_capture()
    ok = print_summary([(scenario, task_id, scenario.expected) for scenario in SCENARIOS])
    output = cli_common.console.end_capture()
    assert ok and output.count(task_id) == len(SCENARIOS), output


def test_demo_real_model_hint_fits_a_terminal_of_80_columns() -> None:
    narrow = Console(width=80, record=True)
    narrow.print(Panel(REAL_MODEL_HINT, border_style="blue"))
    output = narrow.export_text()
    for line in Text.from_markup(REAL_MODEL_HINT).plain.splitlines():
        assert line.strip() in output, (line, output)  # not wrapped onto two rows
