"""MahsmClient in direct-Temporal mode against a real engine (Temporal dev server, Postgres)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import yaml
from temporalio.client import Client, WorkflowFailureError

from mahsm.client import Conflict, MahsmClient, ServiceUnavailable, SyncMahsmClient, TaskNotFound
from mahsm.client.temporal_backend import TemporalBackend
from mahsm.contracts.task import SubtaskStatus, TaskRequest, TaskState, TaskStatus
from mahsm.settings import load_settings
from tests.engine_harness import Engine, running_engine

DEMO_SCENARIO: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parents[2] / "mahsm/scenarios/demo.yaml").read_text()
)
FACTORIAL = "What is the factorial of 10? Use the calculator."
SALES = "Analyze our quarterly sales: collect the figures, compute the growth, write a report."
INVENTORY = "Build the inventory dashboard from the legacy feed and the supplier list."
UI = "http://ui.example:8233"


@pytest_asyncio.fixture(loop_scope="session")
async def engine(
    temporal_client: Client, db_pool: asyncpg.Pool, data_dir: Path
) -> AsyncIterator[Engine]:
    async with running_engine(
        client=temporal_client, pool=db_pool, data_dir=data_dir, scenario=DEMO_SCENARIO
    ) as running:
        yield running


@pytest.fixture
def client(engine: Engine) -> MahsmClient:
    return MahsmClient.from_temporal_client(
        engine.client, queue_prefix=engine.settings.queue_prefix, ui_url=UI
    )


async def _until(client: MahsmClient, task_id: str, status: TaskStatus) -> TaskState:
    for _ in range(300):
        state = await client.get(task_id)
        if state.status == status:
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"{task_id} never reached {status}; last {state}")


async def test_submit_and_wait_reports_progress_until_completed(client: MahsmClient) -> None:
    task_id = await client.submit(FACTORIAL, model="scripted/demo")
    seen: list[TaskState] = []

    final = await client.wait(task_id, on_progress=seen.append, poll_s=0.1, timeout_s=60)

    assert task_id.startswith("task-")
    assert final.status == TaskStatus.COMPLETED
    assert "3628800" in (final.result or "")
    assert final.model == "scripted/demo"
    assert final.subtask("compute_factorial").result.output == "The factorial of 10 is 3628800."
    assert seen[-1] == final
    assert len({state.version for state in seen}) == len(seen)  # only changed states
    assert client.link(task_id) == f"{UI}/namespaces/default/workflows/{task_id}"


async def test_async_progress_callback_and_dependencies(client: MahsmClient) -> None:
    statuses: list[TaskStatus] = []

    async def record(state: TaskState) -> None:
        statuses.append(state.status)

    task_id = await client.submit(
        TaskRequest(description=SALES, options={"model": "scripted/demo"})
    )
    final = await client.wait(task_id, on_progress=record, poll_s=0.1, timeout_s=60)

    assert final.status == TaskStatus.COMPLETED
    collect, growth, report = (
        final.subtask(s).result for s in ("collect_sales", "compute_growth", "write_report")
    )
    assert collect.finished_at and growth.started_at and collect.finished_at <= growth.started_at
    assert "41.7" in (growth.output or "")
    assert report.status == SubtaskStatus.COMPLETED
    assert statuses[-1] == TaskStatus.COMPLETED


async def test_failing_branch_ends_failed_with_the_blocked_subtask(client: MahsmClient) -> None:
    task_id = await client.submit(INVENTORY, model="scripted/demo")

    final = await client.wait(task_id, poll_s=0.1, timeout_s=60)

    assert final.status == TaskStatus.FAILED
    assert "legacy_feed" in (final.error or "")
    assert final.subtask("legacy_feed").result.status == SubtaskStatus.FAILED
    assert final.subtask("supplier_list").result.status == SubtaskStatus.COMPLETED
    assert final.subtask("merge_dashboard").result.status == SubtaskStatus.BLOCKED


async def test_unknown_task_raises_task_not_found(client: MahsmClient) -> None:
    for call in (client.get, client.cancel, client.approve):
        with pytest.raises(TaskNotFound) as raised:
            await call("task-does-not-exist")
        assert raised.value.code == "task_not_found"


async def test_approve_then_conflicts_once_decided(client: MahsmClient) -> None:
    task_id = await client.submit(FACTORIAL, model="scripted/demo", require_approval=True)
    waiting = await _until(client, task_id, TaskStatus.AWAITING_APPROVAL)
    assert [s.subtask.id for s in waiting.subtasks] == ["compute_factorial"]

    assert await client.approve(task_id, True, "go") == TaskStatus.RUNNING
    with pytest.raises(Conflict, match="not awaiting approval"):
        await client.approve(task_id, True)
    final = await client.wait(task_id, poll_s=0.1, timeout_s=60)
    assert final.status == TaskStatus.COMPLETED and final.approval_comment == "go"

    with pytest.raises(Conflict):
        await client.approve(task_id, False)


async def test_reject_cancels_the_task(client: MahsmClient) -> None:
    task_id = await client.submit(FACTORIAL, model="scripted/demo", require_approval=True)
    await _until(client, task_id, TaskStatus.AWAITING_APPROVAL)

    assert await client.approve(task_id, approved=False, comment="not now") == (
        TaskStatus.CANCELLED
    )
    final = await client.wait(task_id, poll_s=0.1, timeout_s=30)
    assert final.status == TaskStatus.CANCELLED and "not now" in (final.error or "")


async def test_cancel_a_running_task_then_conflict(engine: Engine, client: MahsmClient) -> None:
    task_id = await client.submit(FACTORIAL, model="scripted/demo", require_approval=True)
    await _until(client, task_id, TaskStatus.AWAITING_APPROVAL)

    await client.cancel(task_id)
    final = await client.wait(task_id, poll_s=0.1, timeout_s=30)

    assert final.status == TaskStatus.CANCELLED
    # While the workflow winds down (final store write) a repeat is still accepted; once it
    # has closed, it is a conflict.
    with contextlib.suppress(WorkflowFailureError):
        await asyncio.wait_for(engine.client.get_workflow_handle(task_id).result(), 30)
    with pytest.raises(Conflict, match="has ended") as raised:
        await client.cancel(task_id)
    assert raised.value.code == "task_ended" and raised.value.status == 409


async def test_list_filters_by_status_and_user(client: MahsmClient) -> None:
    done = await client.submit(FACTORIAL, model="scripted/demo", user_id="lister")
    await client.wait(done, poll_s=0.1, timeout_s=60)
    waiting = await client.submit(
        FACTORIAL, model="scripted/demo", user_id="lister", require_approval=True
    )
    await _until(client, waiting, TaskStatus.AWAITING_APPROVAL)

    async def listed(**filters: Any) -> set[str]:
        for _ in range(100):  # visibility is eventually consistent
            ids = {t.task_id for t in (await client.list(**filters)).tasks}
            if ids:
                return ids
            await asyncio.sleep(0.1)
        return set()

    assert {done, waiting} <= await listed(user_id="lister")
    assert await listed(user_id="lister", status="awaiting_approval") == {waiting}
    await client.cancel(waiting)
    # Pages are read from Temporal's visibility, which catches up with the cancel shortly
    # after the task ends: wait for that, or the two pages may see it in two places.
    await client.wait(waiting, poll_s=0.1, timeout_s=60)
    assert await listed(user_id="lister", status="cancelled") == {waiting}

    first = await client.list(user_id="lister", limit=1)
    assert len(first.tasks) == 1 and first.next_cursor
    second = await client.list(user_id="lister", limit=1, cursor=first.next_cursor)
    assert {first.tasks[0].task_id, second.tasks[0].task_id} == {done, waiting}


async def test_sync_client_connects_from_settings(engine: Engine, temporal_client: Client) -> None:
    settings = load_settings(
        _env_file=None,
        temporal_address=temporal_client.service_client.config.target_host,
        queue_prefix=engine.settings.queue_prefix,
    )

    def run() -> tuple[str, TaskState, list[TaskStatus]]:
        statuses: list[TaskStatus] = []
        with SyncMahsmClient.temporal(settings) as sync:
            task_id = sync.submit(FACTORIAL, model="scripted/demo")
            final = sync.wait(task_id, on_progress=lambda s: statuses.append(s.status), poll_s=0.1)
            assert sync.get(task_id) == final
            with pytest.raises(TaskNotFound):
                sync.get("task-nope")
            return task_id, final, statuses

    task_id, final, statuses = await asyncio.to_thread(run)
    assert final.status == TaskStatus.COMPLETED and final.task_id == task_id
    assert statuses[-1] == TaskStatus.COMPLETED


async def test_plain_temporal_sdk_example_from_the_docs(engine: Engine) -> None:
    """docs/client.md: TaskWorkflow started, queried and updated by name, no MAHSM client."""
    from temporalio.client import WorkflowHandle

    from mahsm.contracts.task import ApprovalDecision, ApprovalOutcome, TaskOptions

    client = engine.client  # connected with pydantic_data_converter
    handle: WorkflowHandle[Any, TaskState] = await client.start_workflow(
        "TaskWorkflow",
        TaskRequest(
            description=FACTORIAL,
            options=TaskOptions(model="scripted/demo", require_approval=True),
        ),
        id=f"task-{uuid.uuid4()}",
        task_queue=f"{engine.settings.queue_prefix}-tasks",
        result_type=TaskState,
    )
    for _ in range(300):
        state = await handle.query("state", result_type=TaskState)
        if state.status == TaskStatus.AWAITING_APPROVAL:
            break
        await asyncio.sleep(0.1)
    outcome = await handle.execute_update(
        "approve", ApprovalDecision(approved=True), result_type=ApprovalOutcome
    )
    final = await handle.result()

    assert outcome.status == TaskStatus.RUNNING
    assert final.status == TaskStatus.COMPLETED and "3628800" in (final.result or "")


async def test_approve_with_no_worker_raises_service_unavailable(temporal_client: Client) -> None:
    # No worker polls this prefix: the update is never taken and its call times out.
    prefix = f"idle{uuid.uuid4().hex[:8]}"
    backend = TemporalBackend(
        temporal_client, queue_prefix=prefix, update_timeout=timedelta(seconds=1)
    )
    client = MahsmClient(backend)
    task_id = await client.submit(FACTORIAL, require_approval=True)

    with pytest.raises(ServiceUnavailable) as raised:
        await client.approve(task_id, True)

    assert raised.value.code == "temporal_unavailable"
    assert task_id in raised.value.message and "workers" in raised.value.message


async def test_cancelling_a_pending_approve_stays_a_cancellation(temporal_client: Client) -> None:
    # The SDK turns a cancelled update call into its timeout error; the caller's own
    # cancellation (here asyncio.wait_for) must still surface as a timeout, not a 503.
    prefix = f"idle{uuid.uuid4().hex[:8]}"
    client = MahsmClient(TemporalBackend(temporal_client, queue_prefix=prefix))
    task_id = await client.submit(FACTORIAL, require_approval=True)

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(client.approve(task_id, True), timeout=0.5)


async def test_list_shows_running_tasks_first_then_the_most_recently_ended(
    client: MahsmClient,
) -> None:
    # docs/client.md: Temporal mode lists in the visibility store's order.
    ended_first = await client.submit(FACTORIAL, model="scripted/demo", user_id="orderly")
    await client.wait(ended_first, poll_s=0.1, timeout_s=60)
    ended_last = await client.submit(FACTORIAL, model="scripted/demo", user_id="orderly")
    await client.wait(ended_last, poll_s=0.1, timeout_s=60)
    running = await client.submit(
        FACTORIAL, model="scripted/demo", user_id="orderly", require_approval=True
    )
    await _until(client, running, TaskStatus.AWAITING_APPROVAL)
    expected = [running, ended_last, ended_first]

    listed: list[str] = []
    for _ in range(100):  # visibility is eventually consistent
        listed = [t.task_id for t in (await client.list(user_id="orderly")).tasks]
        if listed == expected:
            break
        await asyncio.sleep(0.1)
    await client.cancel(running)

    assert listed == expected
