"""503 while Temporal or Postgres is down, and reads that survive one of them being down."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from mahsm import task_driver
from mahsm.api import task_access
from mahsm.api.auth import Caller
from mahsm.api.main import create_app
from mahsm.devstack.process import free_port
from mahsm.settings import load_settings
from tests.api.conftest import StackFactory, api_settings, asgi_client, subtask
from tests.engine_harness import AGGREGATE, answer_rule, plan_rule

SLOW = {
    "rules": [
        plan_rule("slow", [subtask("wait", "Wait for a while")]),
        answer_rule("Wait for a while", "done", latency_ms=1500),
        AGGREGATE,
    ]
}


def nowhere() -> str:
    return f"127.0.0.1:{free_port()}"


async def test_every_endpoint_answers_503_when_both_backends_are_down() -> None:
    settings = load_settings(
        _env_file=None,
        temporal_address=nowhere(),
        database_url=f"postgresql://postgres:s3cret@{nowhere()}/mahsm",
    )
    task_id = f"task-{uuid.uuid4()}"
    async with asgi_client(create_app(settings)) as http:
        responses = {
            "submit": await http.post("/tasks", json={"description": "Nobody will run this"}),
            "list": await http.get("/tasks"),
            "get": await http.get(f"/tasks/{task_id}"),
            "cancel": await http.post(f"/tasks/{task_id}/cancel"),
            "approve": await http.post(f"/tasks/{task_id}/approve", json={"approved": True}),
            "events": await http.get(f"/tasks/{task_id}/events"),
            "agents": await http.get("/agents"),
        }

    for name, response in responses.items():
        assert response.status_code == 503, name
        assert response.json()["code"] in ("temporal_unavailable", "database_unavailable")
        assert "s3cret" not in response.text
    assert responses["submit"].json()["code"] == "temporal_unavailable"
    assert responses["list"].json()["code"] == "database_unavailable"


async def test_a_running_task_is_read_live_while_postgres_is_down(
    api_stack: StackFactory, temporal_env: WorkflowEnvironment
) -> None:
    async with api_stack(SLOW) as stack:
        settings = api_settings(
            temporal_env,
            f"postgresql://postgres@{nowhere()}/mahsm",
            queue_prefix=stack.engine.settings.queue_prefix,
        )
        async with asgi_client(create_app(settings)) as http:
            submitted = await http.post("/tasks", json={"description": "Runs without Postgres"})
            task_id = submitted.json()["task_id"]
            live = await http.get(f"/tasks/{task_id}")
            listing = await http.get("/tasks")

    assert submitted.status_code == 202
    assert live.status_code == 200 and live.json()["task"]["id"] == task_id
    assert listing.status_code == 503 and listing.json()["code"] == "database_unavailable"


async def test_a_stored_task_is_read_from_postgres_while_temporal_is_down(
    db_pool: asyncpg.Pool, database_url: str
) -> None:
    task_id = f"task-{uuid.uuid4()}"
    now = datetime.now(UTC)
    await db_pool.execute(
        "INSERT INTO tasks (id, description, status, created_at, updated_at)"
        " VALUES ($1, 'Stored while Temporal is away', 'running', $2, $2)",
        task_id,
        now,
    )
    settings = load_settings(_env_file=None, temporal_address=nowhere(), database_url=database_url)
    async with asgi_client(create_app(settings)) as http:
        stored = await http.get(f"/tasks/{task_id}")
        missing = await http.get(f"/tasks/task-{uuid.uuid4()}")
        cancel = await http.post(f"/tasks/{task_id}/cancel")

    assert stored.status_code == 200
    assert stored.json()["task"]["status"] == "running"
    assert stored.json()["subtask_results"] == []
    assert missing.status_code == 503 and missing.json()["code"] == "temporal_unavailable"
    assert cancel.status_code == 503


async def test_a_task_no_worker_has_picked_up_reads_pending_and_can_be_cancelled(
    temporal_env: WorkflowEnvironment, database_url: str
) -> None:
    prefix = f"idle{uuid.uuid4().hex[:8]}"  # no worker polls this prefix
    app = create_app(api_settings(temporal_env, database_url, queue_prefix=prefix))
    async with asgi_client(app) as http:
        submitted = await http.post(
            "/tasks", json={"description": "Nobody runs this yet", "user_id": "zed"}
        )
        task_id = submitted.json()["task_id"]
        pending = await http.get(f"/tasks/{task_id}")
        cancel = await http.post(f"/tasks/{task_id}/cancel")

    assert pending.status_code == 200, pending.text
    task = pending.json()["task"]
    assert task["status"] == "pending" and task["user_id"] == "zed"
    assert task["description"] == "Nobody runs this yet"
    assert pending.json()["subtask_results"] == []
    assert cancel.status_code == 202


async def test_approving_a_task_no_worker_runs_answers_503_not_500(
    temporal_env: WorkflowEnvironment, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The update waits for a worker that never comes: the client call times out.
    monkeypatch.setattr(task_access, "LIVE_QUERY_TIMEOUT", timedelta(seconds=1))
    monkeypatch.setattr(task_driver, "UPDATE_TIMEOUT", timedelta(seconds=1))
    prefix = f"idle{uuid.uuid4().hex[:8]}"  # no worker polls this prefix
    app = create_app(api_settings(temporal_env, database_url, queue_prefix=prefix))
    async with asgi_client(app) as http:
        submitted = await http.post(
            "/tasks",
            json={"description": "Hold me for approval", "options": {"require_approval": True}},
        )
        task_id = submitted.json()["task_id"]
        approve = await http.post(f"/tasks/{task_id}/approve", json={"approved": True})

    assert approve.status_code == 503, approve.text
    body = approve.json()
    assert body["code"] == "temporal_unavailable"
    assert "no answer within 1s" in body["message"] and "workers" in body["message"]


async def test_the_stored_row_is_served_when_the_state_query_gets_no_answer(
    temporal_env: WorkflowEnvironment,
    database_url: str,
    db_pool: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A workflow whose query cannot be answered in time (here: no worker at all) but whose
    # row says `running`: GET shows the row, not a `pending` made up from the start event.
    monkeypatch.setattr(task_access, "LIVE_QUERY_TIMEOUT", timedelta(seconds=1))
    prefix = f"idle{uuid.uuid4().hex[:8]}"
    app = create_app(api_settings(temporal_env, database_url, queue_prefix=prefix))
    async with asgi_client(app) as http:
        submitted = await http.post("/tasks", json={"description": "Busy workers, stored row"})
        task_id = submitted.json()["task_id"]
        now = datetime.now(UTC)
        await db_pool.execute(
            "INSERT INTO tasks (id, description, status, version, created_at, updated_at)"
            " VALUES ($1, 'Busy workers, stored row', 'running', 7, $2, $2)",
            task_id,
            now,
        )
        read = await http.get(f"/tasks/{task_id}")
        snapshot = await task_access.find_snapshot(app.state.backends, task_id, Caller(user=None))

    assert read.status_code == 200, read.text
    assert read.json()["task"]["status"] == "running"
    assert snapshot.detail.task.status == "running" and snapshot.version == 7
