"""One driver of `TaskWorkflow`: the API and the client's Temporal mode wait as long and fail
with the same codes, and the client (like all of `mahsm/`) does not reach up into the engine.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import uuid
from collections.abc import Awaitable
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from mahsm import task_driver
from mahsm.api.main import create_app
from mahsm.client import Conflict, MahsmClient, MahsmError, ServiceUnavailable, TaskNotFound
from mahsm.contracts.task import TaskState, TaskStatus
from tests.api.conftest import api_settings, asgi_client, subtask
from tests.cli.api_harness import FACTORIAL, served_api
from tests.engine_harness import AGGREGATE, answer_rule, plan_rule

MAHSM = Path(__file__).parents[2] / "mahsm"


def imported_roots(path: Path) -> set[str]:
    """The packages a module imports (`a` and `a.b` of `import a.b.c`/`from a.b import c`)."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            roots.update({parts[0], ".".join(parts[:2])})
    return roots


def test_mahsm_imports_neither_the_engine_nor_the_api() -> None:
    # DESIGN.md: mahsm/ may not import api/ or workers/; the client (and the driver it uses)
    # must not import workflows/.
    engine = {"workflows", "activities", "mahsm.workflows", "mahsm.activities"}
    processes = {"api", "workers", "mahsm.api", "mahsm.workers"}
    for path in MAHSM.rglob("*.py"):
        forbidden = processes | (engine if path.is_relative_to(MAHSM / "client") else set())
        if path.name == "task_driver.py" or path.is_relative_to(MAHSM / "contracts"):
            forbidden |= engine
        assert not imported_roots(path) & forbidden, path


async def _until(client: MahsmClient, task_id: str, status: TaskStatus) -> TaskState:
    for _ in range(300):
        state = await client.get(task_id)
        if state.status == status:
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"{task_id} never reached {status}")


async def _error(call: Awaitable[Any]) -> MahsmError:
    with pytest.raises(MahsmError) as raised:
        await call
    return raised.value


SLOW = {
    "rules": [
        plan_rule("slow", [subtask("wait", "Wait for a long time")]),
        answer_rule("Wait for a long time", "never", latency_ms=30000),
        AGGREGATE,
    ]
}


async def test_both_modes_refuse_the_same_calls_with_the_same_codes(
    temporal_env: WorkflowEnvironment, db_pool: asyncpg.Pool, database_url: str, data_dir: Path
) -> None:
    async with served_api(
        temporal_env=temporal_env,
        pool=db_pool,
        database_url=database_url,
        data_dir=data_dir,
        scenario=SLOW,
    ) as api:
        clients = {
            "rest": MahsmClient.rest(api.url),
            "temporal": MahsmClient.from_temporal_client(
                api.engine.client, queue_prefix=api.engine.settings.queue_prefix
            ),
        }
        rest = clients["rest"]
        task_id = await rest.submit("Take your time with this slow one", require_approval=True)
        await _until(rest, task_id, TaskStatus.AWAITING_APPROVAL)
        assert await rest.approve(task_id) == TaskStatus.RUNNING
        running = {mode: await _error(c.approve(task_id)) for mode, c in clients.items()}
        await rest.cancel(task_id)
        with contextlib.suppress(WorkflowFailureError):  # closed, final row written
            await asyncio.wait_for(api.engine.client.get_workflow_handle(task_id).result(), 30)
        ended = {
            mode: [await _error(c.approve(task_id)), await _error(c.cancel(task_id))]
            for mode, c in clients.items()
        }
        unknown = {mode: await _error(c.get(f"task-{uuid.uuid4()}")) for mode, c in clients.items()}
        for client in clients.values():
            await client.close()

    def shape(error: MahsmError) -> tuple[type[MahsmError], str, int | None]:
        return type(error), error.code, error.status

    for mode in clients:
        assert shape(running[mode]) == (Conflict, "not_awaiting_approval", 409), mode
        assert [shape(e) for e in ended[mode]] == [(Conflict, "task_ended", 409)] * 2, mode
        assert shape(unknown[mode]) == (TaskNotFound, "task_not_found", 404), mode
    assert "not awaiting approval" in running["temporal"].message


async def test_the_api_and_the_client_give_up_on_an_approval_alike(
    temporal_env: WorkflowEnvironment, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No worker polls this prefix: the update is never taken, so both calls time out, after
    # the driver's one `UPDATE_TIMEOUT` (shortened here), with one message.
    monkeypatch.setattr(task_driver, "UPDATE_TIMEOUT", timedelta(seconds=1))
    idle = f"idle{uuid.uuid4().hex[:8]}"
    app = create_app(api_settings(temporal_env, database_url, queue_prefix=idle))
    temporal = MahsmClient.from_temporal_client(temporal_env.client, queue_prefix=idle)
    async with asgi_client(app) as http:
        submitted = await http.post(
            "/tasks", json={"description": FACTORIAL, "options": {"require_approval": True}}
        )
        task_id = submitted.json()["task_id"]
        over_http = await http.post(f"/tasks/{task_id}/approve", json={"approved": True})
    direct = await _error(temporal.approve(task_id))

    assert over_http.status_code == 503 and isinstance(direct, ServiceUnavailable)
    assert over_http.json()["code"] == direct.code == "temporal_unavailable"
    assert over_http.json()["message"] == direct.message
    assert "no answer within 1s" in direct.message and task_id in direct.message
