"""MahsmClient in REST mode against the real API app (uvicorn) on a real engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from mahsm.client import (
    AuthError,
    Conflict,
    InvalidRequest,
    MahsmClient,
    ServiceUnavailable,
    SyncMahsmClient,
    TaskNotFound,
)
from mahsm.contracts.task import SubtaskStatus, TaskState, TaskStatus
from mahsm.devstack.process import free_port
from tests.cli.api_harness import FACTORIAL, INVENTORY, SALES, UI_URL, ServedApi, served_api

DEMO = {"model": "scripted/demo"}


@pytest_asyncio.fixture(loop_scope="session")
async def client(api: ServedApi) -> AsyncIterator[MahsmClient]:
    async with MahsmClient.rest(api.url) as rest:
        yield rest


async def _until(client: MahsmClient, task_id: str, status: TaskStatus) -> TaskState:
    for _ in range(300):
        state = await client.get(task_id)
        if state.status == status:
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"{task_id} never reached {status}; last {state}")


async def test_submit_wait_and_get_map_the_api_shapes(client: MahsmClient) -> None:
    task_id = await client.submit(FACTORIAL, **DEMO)
    seen: list[TaskStatus] = []

    final = await client.wait(
        task_id, on_progress=lambda s: seen.append(s.status), poll_s=0.1, timeout_s=60
    )

    assert final.task_id == task_id and final.status == TaskStatus.COMPLETED
    assert "3628800" in (final.result or "")
    assert final.plan is not None and [s.id for s in final.plan.subtasks] == ["compute_factorial"]
    calc = final.subtask("compute_factorial")
    assert calc.subtask.required_capabilities == ["data_analysis"]
    assert calc.result.status == SubtaskStatus.COMPLETED and calc.result.agent
    assert (
        calc.result.usage.total_tokens > 0
        and final.usage.total_tokens >= calc.result.usage.total_tokens
    )
    assert seen[-1] == TaskStatus.COMPLETED and len(seen) >= 2
    assert client.link(task_id) == f"{UI_URL}/namespaces/default/workflows/{task_id}"
    assert await client.get(task_id) == final  # from Postgres once ended


async def test_dependencies_and_failing_branch(client: MahsmClient) -> None:
    sales = await client.submit(SALES, **DEMO)
    inventory = await client.submit(INVENTORY, **DEMO)

    done, failed = await asyncio.gather(
        client.wait(sales, poll_s=0.1, timeout_s=60),
        client.wait(inventory, poll_s=0.1, timeout_s=60),
    )

    assert done.status == TaskStatus.COMPLETED
    assert done.subtask("compute_growth").subtask.depends_on == ["collect_sales"]
    assert failed.status == TaskStatus.FAILED and "legacy_feed" in (failed.error or "")
    assert {s.subtask.id: s.result.status for s in failed.subtasks} == {
        "legacy_feed": SubtaskStatus.FAILED,
        "supplier_list": SubtaskStatus.COMPLETED,
        "merge_dashboard": SubtaskStatus.BLOCKED,
    }


async def test_errors_carry_the_api_code(client: MahsmClient) -> None:
    with pytest.raises(TaskNotFound) as missing:
        await client.get("task-00000000-0000-0000-0000-000000000000")
    assert missing.value.code == "task_not_found" and missing.value.status == 404
    with pytest.raises(TaskNotFound):
        await client.cancel("task-00000000-0000-0000-0000-000000000000")
    with pytest.raises(InvalidRequest) as invalid:
        await client.list(limit=0)
    assert invalid.value.status == 422 and "limit" in invalid.value.message


async def test_approve_reject_cancel_and_conflicts(client: MahsmClient) -> None:
    approved = await client.submit(FACTORIAL, require_approval=True, **DEMO)
    rejected = await client.submit(FACTORIAL, require_approval=True, **DEMO)
    cancelled = await client.submit(FACTORIAL, require_approval=True, **DEMO)
    for task_id in (approved, rejected, cancelled):
        await _until(client, task_id, TaskStatus.AWAITING_APPROVAL)

    assert await client.approve(approved, comment="ok") == TaskStatus.RUNNING
    with pytest.raises(Conflict) as twice:
        await client.approve(approved)
    assert twice.value.status == 409
    assert await client.approve(rejected, approved=False, comment="no") == TaskStatus.CANCELLED
    await client.cancel(cancelled)

    assert (await client.wait(approved, poll_s=0.1, timeout_s=60)).status == TaskStatus.COMPLETED
    assert (await client.wait(rejected, poll_s=0.1, timeout_s=30)).status == TaskStatus.CANCELLED
    assert (await client.wait(cancelled, poll_s=0.1, timeout_s=30)).status == TaskStatus.CANCELLED
    with pytest.raises(Conflict):
        await client.cancel(approved)


async def test_list_filters_and_pages(client: MahsmClient) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    first = await client.submit(FACTORIAL, user_id="rest-lister", **DEMO)
    second = await client.submit(FACTORIAL, user_id="rest-lister", **DEMO)
    for task_id in (first, second):
        await client.wait(task_id, poll_s=0.1, timeout_s=60)

    page = await client.list(
        user_id="rest-lister", status="completed", created_after=since, limit=1
    )
    assert len(page.tasks) == 1 and page.next_cursor
    rest = await client.list(user_id="rest-lister", limit=1, cursor=page.next_cursor)
    assert {page.tasks[0].task_id, rest.tasks[0].task_id} == {first, second}
    assert page.tasks[0].status == TaskStatus.COMPLETED and page.tasks[0].subtasks == []
    assert (await client.list(user_id="rest-lister", created_before=since)).tasks == []


async def test_agents_lists_the_engine_pool(client: MahsmClient, api: ServedApi) -> None:
    view = await client.agents()

    prefix = api.settings.queue_prefix
    assert view.task_queue == f"{prefix}-tasks" and view.orchestrators
    assert any(p.task_queue.startswith(f"{prefix}-pool.") and p.workers for p in view.pools)
    assert view.unserved_capabilities == []


async def test_unreachable_api_raises_service_unavailable() -> None:
    async with MahsmClient.rest(f"http://127.0.0.1:{free_port()}") as nowhere:
        with pytest.raises(ServiceUnavailable) as raised:
            await nowhere.get("task-x")
    assert raised.value.code == "api_unreachable"


async def test_api_keys_authenticate_and_scope_tasks(
    temporal_env: WorkflowEnvironment, db_pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    async with served_api(
        temporal_env=temporal_env,
        pool=db_pool,
        database_url=database_url,
        data_dir=tmp_path,
        api_keys={"alice-key": "alice", "bob-key": "bob"},
    ) as api:
        for key in (None, "wrong"):
            async with MahsmClient.rest(api.url, key) as anonymous:
                with pytest.raises(AuthError) as denied:
                    await anonymous.list()
                assert denied.value.status == 401
        async with (
            MahsmClient.rest(api.url, "alice-key") as alice,
            MahsmClient.rest(api.url, "bob-key") as bob,
        ):
            task_id = await alice.submit(FACTORIAL, **DEMO)
            state = await alice.wait(task_id, poll_s=0.1, timeout_s=60)
            assert state.user_id == "alice" and state.status == TaskStatus.COMPLETED
            with pytest.raises(TaskNotFound):
                await bob.get(task_id)


async def test_sync_rest_client(api: ServedApi) -> None:
    def run() -> TaskState:
        with SyncMahsmClient.rest(api.url) as sync:
            task_id = sync.submit(FACTORIAL, **DEMO)
            assert sync.link(task_id)
            final = sync.wait(task_id, poll_s=0.1)
            assert sync.list(limit=5).tasks
            with pytest.raises(TaskNotFound):
                sync.get("task-00000000-0000-0000-0000-000000000000")
            return final

    final = await asyncio.to_thread(run)
    assert final.status == TaskStatus.COMPLETED
