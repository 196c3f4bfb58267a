"""The task commands against the real API on a real engine: output and exit codes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import pytest
from click.testing import Result
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from mahsm.cli import common as cli_common
from mahsm.cli.main import app
from mahsm.client import MahsmClient
from mahsm.contracts.task import TaskStatus
from mahsm.devstack.process import free_port
from tests.cli.api_harness import FACTORIAL, INVENTORY, UI_URL, ServedApi, served_api

MISSING = "task-00000000-0000-0000-0000-000000000000"


@pytest.fixture(autouse=True)
def wide_console() -> None:
    cli_common.console.width = 200
    cli_common.errors.width = 200


async def mahsm(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run the CLI in a thread: it runs its own event loop, the engine runs on ours."""
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


async def _until(api: ServedApi, task_id: str, status: TaskStatus) -> None:
    async with MahsmClient.rest(api.url) as client:
        for _ in range(300):
            if (await client.get(task_id)).status == status:
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"{task_id} never reached {status}")


def _task_id(result: Result) -> str:
    return next(w for w in result.output.split() if w.startswith("task-"))


async def test_submit_wait_completed_exits_0_with_table_and_result(api: ServedApi) -> None:
    result = await mahsm(
        "submit", FACTORIAL, "--wait", "--model", "scripted/demo", "--api", api.url
    )

    assert result.exit_code == 0, result.output
    task_id = _task_id(result)
    assert f"Submitted {task_id}" in result.output
    assert f"{UI_URL}/namespaces/default/workflows/{task_id}" in result.output
    for heading in ("Subtask", "Status", "Agent", "Tokens", "Cost", "total (incl. planning)"):
        assert heading in result.output
    assert "compute_factorial" in result.output and "completed" in result.output
    assert "The factorial of 10 is 3628800" in result.output


async def test_submit_wait_failed_exits_1_naming_the_failure(api: ServedApi) -> None:
    result = await mahsm("submit", INVENTORY, "-w", "--model", "scripted/demo", "--api", api.url)

    assert result.exit_code == 1, result.output
    assert "Task failed" in result.output and "subtask 'legacy_feed' failed" in result.output
    assert "blocked" in result.output and "merge_dashboard" in result.output


async def test_submit_then_status_and_list(api: ServedApi) -> None:
    submitted = await mahsm(
        "submit", FACTORIAL, "--model", "scripted/demo", "--user", "cli-user", "--api", api.url
    )
    assert submitted.exit_code == 0, submitted.output
    task_id = _task_id(submitted)
    assert f"mahsm status {task_id}" in submitted.output
    await _until(api, task_id, TaskStatus.COMPLETED)

    status = await mahsm("status", task_id, "--api", api.url)
    assert status.exit_code == 0, status.output
    assert "compute_factorial" in status.output and "3628800" in status.output
    assert f"/workflows/{task_id}" in status.output
    as_json = await mahsm("status", task_id, "--json", "--api", api.url)
    assert json.loads(as_json.output)["status"] == "completed"

    listed = await mahsm("list", "--status", "completed", "--user", "cli-user", "--api", api.url)
    assert listed.exit_code == 0, listed.output
    assert task_id in listed.output and "cli-user" in listed.output
    page = json.loads(
        (await mahsm("list", "--json", "--user", "cli-user", "--api", api.url)).output
    )
    assert [t["task_id"] for t in page["tasks"]] == [task_id]


async def test_status_of_a_failed_task_exits_1(api: ServedApi) -> None:
    async with MahsmClient.rest(api.url) as client:
        task_id = await client.submit(INVENTORY, model="scripted/demo")
        await client.wait(task_id, poll_s=0.1, timeout_s=60)

    result = await mahsm("status", task_id, "--api", api.url)

    assert result.exit_code == 1 and "legacy_feed" in result.output


async def test_unknown_task_exits_3(api: ServedApi) -> None:
    for command in ("status", "cancel", "approve"):
        result = await mahsm(command, MISSING, "--api", api.url)
        assert result.exit_code == 3, result.output
        assert "task_not_found" in result.output


async def test_approve_reject_and_cancel(api: ServedApi) -> None:
    ids = []
    for _ in range(3):
        result = await mahsm(
            "submit", FACTORIAL, "--approval", "--model", "scripted/demo", "--api", api.url
        )
        assert result.exit_code == 0, result.output
        ids.append(_task_id(result))
    approved, rejected, cancelled = ids
    for task_id in ids:
        await _until(api, task_id, TaskStatus.AWAITING_APPROVAL)
    waiting = await mahsm("status", approved, "--api", api.url)
    assert waiting.exit_code == 0 and f"mahsm approve {approved}" in waiting.output

    ok = await mahsm("approve", approved, "--comment", "looks good", "--api", api.url)
    assert ok.exit_code == 0 and "Approved" in ok.output and "running" in ok.output
    again = await mahsm("approve", approved, "--api", api.url)
    assert again.exit_code == 4, again.output
    no = await mahsm("approve", rejected, "--reject", "--api", api.url)
    assert no.exit_code == 0 and "Rejected" in no.output and "cancelled" in no.output
    stop = await mahsm("cancel", cancelled, "--api", api.url)
    assert stop.exit_code == 0 and "Cancellation requested" in stop.output

    await _until(api, cancelled, TaskStatus.CANCELLED)
    assert (await mahsm("cancel", cancelled, "--api", api.url)).exit_code == 4
    assert (await mahsm("status", cancelled, "--api", api.url)).exit_code == 1


async def test_approve_a_task_that_is_not_waiting_exits_4(api: ServedApi) -> None:
    async with MahsmClient.rest(api.url) as client:
        task_id = await client.submit(FACTORIAL, model="scripted/demo")
        await client.wait(task_id, poll_s=0.1, timeout_s=60)

    result = await mahsm("approve", task_id, "--api", api.url)

    assert result.exit_code == 4 and "task_ended" in result.output


async def test_submit_with_a_plan_file(api: ServedApi, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "subtasks:\n"
        "  - id: compute_factorial\n"
        "    description: Compute the factorial of 10 with the calculator tool.\n"
        "    required_capabilities: [data_analysis]\n"
    )
    result = await mahsm(
        "submit", FACTORIAL, "--plan", str(plan), "--max-parallel", "2", "--wait",
        "--model", "scripted/demo", "--api", api.url,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "3628800" in result.output


async def test_agents_lists_pools(api: ServedApi) -> None:
    result = await mahsm("agents", "--api", api.url)

    assert result.exit_code == 0, result.output
    assert f"{api.settings.queue_prefix}-tasks" in result.output
    assert f"{api.settings.queue_prefix}-pool." in result.output


async def test_usage_errors_exit_2(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    short = await mahsm("submit", "too short", "--api", url)
    assert short.exit_code == 2 and "DESCRIPTION" in short.output
    bad_plan = tmp_path / "plan.json"
    bad_plan.write_text('{"subtasks": [{"id": "a", "description": "x"}]}')
    plan = await mahsm("submit", FACTORIAL, "--plan", str(bad_plan), "--api", url)
    assert plan.exit_code == 2 and "required_capabilities" in plan.output
    model = await mahsm("submit", FACTORIAL, "--model", "no-slash", "--api", url)
    assert model.exit_code == 2 and "--model" in model.output
    parallel = await mahsm("submit", FACTORIAL, "--max-parallel", "0", "--api", url)
    assert parallel.exit_code == 2 and "--max-parallel" in parallel.output
    config = await mahsm("list", env={"MAHSM_API_PORT": "not-a-port"})
    assert config.exit_code == 2 and "MAHSM_API_PORT" in config.output


async def test_unreachable_api_exits_5() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (("status", MISSING), ("list",), ("submit", FACTORIAL), ("agents",)):
        result = await mahsm(*args, "--api", url)
        assert result.exit_code == 5, result.output
        assert "cannot reach the MAHSM API" in result.output
    by_env = await mahsm("list", env={"MAHSM_API_URL": url})
    assert by_env.exit_code == 5


async def test_missing_or_wrong_api_key_exits_2(
    temporal_env: WorkflowEnvironment, db_pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    async with served_api(
        temporal_env=temporal_env,
        pool=db_pool,
        database_url=database_url,
        data_dir=tmp_path,
        api_keys={"k1": "alice"},
    ) as api:
        assert (await mahsm("list", "--api", api.url)).exit_code == 2
        assert (await mahsm("list", "--api", api.url, "--api-key", "nope")).exit_code == 2
        ok = await mahsm("list", "--api", api.url, env={"MAHSM_API_KEY": "k1"})
        assert ok.exit_code == 0, ok.output
