"""Contract tests of `/tasks`: submit, read, list, cancel, approve, on a real engine."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from temporalio.testing import WorkflowEnvironment

from mahsm.api.main import create_app
from tests.api.conftest import TERMINAL, StackFactory, api_settings, asgi_client, subtask
from tests.engine_harness import AGGREGATE, answer_rule, plan_rule

TWO_STEPS = {
    "rules": [
        plan_rule(
            "two steps",
            [
                subtask("fetch", "Fetch the figures"),
                subtask("sum", "Sum the figures", "fetch"),
            ],
        ),
        answer_rule("Fetch the figures", "figures=[1, 2]"),
        answer_rule("Sum the figures", "sum=3", latency_ms=300),
        AGGREGATE,
    ]
}

SLOW = {
    "rules": [
        plan_rule("slow", [subtask("wait", "Wait for a long time")]),
        answer_rule("Wait for a long time", "never", latency_ms=30000),
        AGGREGATE,
    ]
}

FAILING = {
    "rules": [
        plan_rule(
            "break",
            [subtask("bad", "Break on purpose"), subtask("after", "Run after bad", "bad")],
        ),
        {"purpose": "agent_step", "match": "Break on purpose", "respond": {"error": 400}},
        AGGREGATE,
    ]
}


async def test_submit_returns_202_with_links_and_the_task_reads_live_then_from_postgres(
    api_stack: StackFactory,
) -> None:
    async with api_stack(TWO_STEPS) as stack:
        response = await stack.http.post(
            "/tasks", json={"description": "Run two steps please", "user_id": "ann"}
        )
        assert response.status_code == 202, response.text
        body = response.json()
        task_id = body["task_id"]
        assert task_id.startswith("task-") and body["status"] == "pending"
        assert body["links"] == {
            "self": f"/tasks/{task_id}",
            "events": f"/tasks/{task_id}/events",
            "temporal_ui": f"http://ui.example:8233/namespaces/default/workflows/{task_id}",
        }

        # Right after POST, before the store activity wrote a row, the state query answers.
        first = await stack.http.get(f"/tasks/{task_id}")
        assert first.status_code == 200, first.text
        assert first.json()["task"]["id"] == task_id
        assert first.json()["task"]["user_id"] == "ann"

        done = await stack.wait_status(task_id, TERMINAL)
        await stack.wait_row(task_id, "completed")
        stored = (await stack.http.get(f"/tasks/{task_id}")).json()

    task = done["task"]
    assert set(task) == {
        "id",
        "user_id",
        "description",
        "status",
        "created_at",
        "updated_at",
        "plan",
        "result",
        "error",
        "usage",
        "model",
        "waiting_for",
        "pipeline",
        "outputs",
        "revisions",
        "estimate",
    }
    assert task["pipeline"] is None and task["outputs"] is None
    assert task["estimate"] is None  # neither approval nor options.estimate
    assert task["status"] == "completed" and "sum=3" in task["result"]
    assert task["usage"]["input_tokens"] > 0
    assert [s["id"] for s in task["plan"]["subtasks"]] == ["fetch", "sum"]
    fetch, total = done["subtask_results"]
    assert set(fetch) == {
        "id",
        "description",
        "required_capabilities",
        "depends_on",
        "status",
        "output",
        "error",
        "agent",
        "started_at",
        "finished_at",
        "attempts",
        "usage",
        "waiting_for",
        "kind",
        "value",
        "model",
        "detections",
        "llm_calls",
    }
    assert fetch["kind"] == "agent" and fetch["value"] is None
    assert fetch["llm_calls"] == 1  # one answer, no tool
    assert fetch["id"] == "fetch" and fetch["output"] == "figures=[1, 2]"
    assert total["depends_on"] == ["fetch"] and total["required_capabilities"] == ["data_analysis"]
    assert total["status"] == "completed" and total["agent"] and total["attempts"] >= 1
    # After the end, Postgres serves the same task (result, order and outputs included).
    assert stored["task"]["status"] == "completed"
    assert stored["task"]["result"] == task["result"]
    assert [s["output"] for s in stored["subtask_results"]] == ["figures=[1, 2]", "sum=3"]


async def test_a_task_temporal_has_forgotten_is_read_from_postgres(
    api_stack: StackFactory, db_pool: asyncpg.Pool
) -> None:
    task_id = f"task-{uuid.uuid4()}"
    now = datetime.now(UTC)
    big = "x" * 200_000
    await db_pool.execute(
        "INSERT INTO blobs (id, sha256, size_bytes, content) VALUES ('b1', 'b1', $1, $2)",
        len(big),
        big.encode(),
    )
    plan = {"subtasks": [subtask("only", "The only step")]}
    await db_pool.execute(
        "INSERT INTO tasks (id, user_id, description, status, plan, result_ref, usage, version,"
        " created_at, updated_at) VALUES ($1, 'old', 'An old finished task', 'completed', $2,"
        " $3, $4, 9, $5, $5)",
        task_id,
        plan,
        {"blob_id": "b1", "size_bytes": len(big), "sha256": "b1"},
        {"input_tokens": 5, "output_tokens": 7, "cost_usd": 0.01},
        now,
    )
    await db_pool.execute(
        "INSERT INTO subtasks (task_id, id, description, required_capabilities, status, output,"
        " attempts) VALUES ($1, 'only', 'The only step', '{data_analysis}', 'completed', 'ok', 1)",
        task_id,
    )
    async with api_stack(TWO_STEPS) as stack:
        response = await stack.http.get(f"/tasks/{task_id}")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["task"]["status"] == "completed" and body["task"]["result"] == big
    assert body["task"]["usage"] == {
        "input_tokens": 5,
        "output_tokens": 7,
        "cost_usd": 0.01,
        "calls": 0,  # a state recorded without a call count
    }
    assert body["subtask_results"][0]["output"] == "ok"
    assert body["subtask_results"][0]["waiting_for"] is None


async def test_unknown_and_malformed_task_ids(api_stack: StackFactory) -> None:
    async with api_stack(TWO_STEPS) as stack:
        unknown = f"task-{uuid.uuid4()}"
        responses = {
            "get": await stack.http.get(f"/tasks/{unknown}"),
            "cancel": await stack.http.post(f"/tasks/{unknown}/cancel"),
            "approve": await stack.http.post(f"/tasks/{unknown}/approve", json={"approved": True}),
            "events": await stack.http.get(f"/tasks/{unknown}/events"),
        }
        malformed = await stack.http.get("/tasks/not-a-task%20id")
        too_long = await stack.http.get("/tasks/task-" + "a" * 500)

    for name, response in responses.items():
        assert response.status_code == 404, name
        assert response.json() == {
            "code": "task_not_found",
            "message": f"No task '{unknown}' is visible to you; list yours with GET /tasks.",
            "details": {"task_id": unknown},
        }
    for response in (malformed, too_long):
        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"
        assert "path.task_id" in response.json()["message"]


async def test_invalid_and_oversized_bodies_are_rejected_naming_the_problem(
    api_stack: StackFactory,
) -> None:
    async with api_stack(TWO_STEPS) as stack:
        short = await stack.http.post("/tasks", json={"description": "short"})
        extra = await stack.http.post("/tasks", json={"description": "long enough!", "x": 1})
        bad_plan = await stack.http.post(
            "/tasks",
            json={
                "description": "A plan with a cycle in it",
                "plan": {"subtasks": [subtask("a", "A step", "a")]},
            },
        )
        not_json = await stack.http.post(
            "/tasks", content=b"{nope", headers={"content-type": "application/json"}
        )
        declared = await stack.http.post(
            "/tasks",
            content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
            headers={"content-type": "application/json"},
        )

        async def chunks():  # no Content-Length: the limit counts streamed bytes
            for _ in range(40):
                yield b" " * 65536

        streamed = await stack.http.post(
            "/tasks", content=chunks(), headers={"content-type": "application/json"}
        )
        bad_approval = await stack.http.post(
            f"/tasks/task-{uuid.uuid4()}/approve", json={"approved": "perhaps"}
        )

    assert short.status_code == 422 and "body.description" in short.json()["message"]
    assert extra.status_code == 422 and "body.x" in extra.json()["message"]
    assert bad_plan.status_code == 422 and "depends on itself" in bad_plan.json()["message"]
    assert not_json.status_code == 422 and not_json.json()["code"] == "validation_error"
    assert bad_approval.status_code == 422 and "body.approved" in bad_approval.json()["message"]
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["code"] == "payload_too_large"


async def test_cancel_is_accepted_while_running_then_conflicts(
    api_stack: StackFactory,
) -> None:
    async with api_stack(SLOW) as stack:
        task_id = (await stack.http.post("/tasks", json={"description": "A slow task"})).json()[
            "task_id"
        ]
        body = await stack.wait_status(task_id, {"running"})
        assert body["subtask_results"][0]["status"] in ("pending", "running")

        # Both while it runs: an inline agent's task ends within moments of a cancel.
        first, second = await asyncio.gather(
            stack.http.post(f"/tasks/{task_id}/cancel"),
            stack.http.post(f"/tasks/{task_id}/cancel"),
        )
        ended = await stack.wait_status(task_id, TERMINAL)
        await stack.wait_closed(task_id)
        after = await stack.http.post(f"/tasks/{task_id}/cancel")

    # Two cancels at once: both are accepted, unless the first one has already ended the task
    # (an inline agent stops within moments) by the time the second is looked at.
    accepted = [r for r in (first, second) if r.status_code == 202]
    assert accepted and all(r.json() == {"task_id": task_id, "status": "running"} for r in accepted)
    for late in (r for r in (first, second) if r.status_code != 202):
        assert late.status_code == 409, late.text
        assert late.json()["details"] == {"task_id": task_id, "status": "cancelled"}
    assert ended["task"]["status"] == "cancelled"
    assert ended["subtask_results"][0]["status"] == "cancelled"
    assert after.status_code == 409
    assert after.json()["code"] == "task_ended"
    assert after.json()["details"] == {"task_id": task_id, "status": "cancelled"}


async def test_approve_and_reject_and_409_when_not_awaiting_approval(
    api_stack: StackFactory,
) -> None:
    options = {"require_approval": True}
    async with api_stack(TWO_STEPS) as stack:
        yes = (
            await stack.http.post(
                "/tasks", json={"description": "Two steps, approve them", "options": options}
            )
        ).json()["task_id"]
        no = (
            await stack.http.post(
                "/tasks", json={"description": "Two steps, reject them", "options": options}
            )
        ).json()["task_id"]
        plain = (
            await stack.http.post("/tasks", json={"description": "Two steps without approval"})
        ).json()["task_id"]
        for task_id in (yes, no):
            held = await stack.wait_status(task_id, {"awaiting_approval"})
            assert held["task"]["plan"] is not None

        approved = await stack.http.post(
            f"/tasks/{yes}/approve", json={"approved": True, "comment": "go"}
        )
        again = await stack.http.post(f"/tasks/{yes}/approve", json={"approved": True})
        rejected = await stack.http.post(
            f"/tasks/{no}/approve", json={"approved": False, "comment": "not now"}
        )
        not_held = await stack.http.post(f"/tasks/{plain}/approve", json={"approved": True})
        done = await stack.wait_status(yes, TERMINAL)
        await stack.wait_row(yes, "completed")
        after_end = await stack.http.post(f"/tasks/{yes}/approve", json={"approved": True})
        gone = await stack.wait_status(no, TERMINAL)

    assert approved.status_code == 200, approved.text
    assert approved.json() == {"task_id": yes, "status": "running"}
    assert again.status_code == 409 and again.json()["code"] == "not_awaiting_approval"
    assert "not awaiting approval" in again.json()["message"]
    assert rejected.status_code == 200 and rejected.json()["status"] == "cancelled"
    assert not_held.status_code == 409 and not_held.json()["code"] == "not_awaiting_approval"
    assert done["task"]["status"] == "completed"
    assert after_end.status_code == 409
    assert gone["task"]["status"] == "cancelled" and gone["task"]["error"] == "rejected: not now"


async def test_a_failed_task_shows_its_error_and_blocked_subtasks(api_stack: StackFactory) -> None:
    async with api_stack(FAILING) as stack:
        task_id = (
            await stack.http.post("/tasks", json={"description": "Please break this task"})
        ).json()["task_id"]
        await stack.wait_status(task_id, TERMINAL)
        await stack.wait_row(task_id, "failed")
        body = (await stack.http.get(f"/tasks/{task_id}")).json()
        cancel = await stack.http.post(f"/tasks/{task_id}/cancel")

    assert body["task"]["status"] == "failed" and "bad" in body["task"]["error"]
    bad, after = body["subtask_results"]
    assert bad["status"] == "failed" and bad["error"]
    assert after["status"] == "blocked"
    assert cancel.status_code == 409 and cancel.json()["details"]["status"] == "failed"


async def test_list_filters_and_paginates_with_an_opaque_cursor(api_stack: StackFactory) -> None:
    user = f"lister-{uuid.uuid4().hex[:6]}"
    async with api_stack(TWO_STEPS) as stack:
        ids = []
        for n in range(3):
            response = await stack.http.post(
                "/tasks", json={"description": f"Two steps number {n}", "user_id": user}
            )
            ids.append(response.json()["task_id"])
        other = (
            await stack.http.post("/tasks", json={"description": "Two steps for someone else"})
        ).json()["task_id"]
        for task_id in [*ids, other]:
            await stack.wait_status(task_id, TERMINAL)
            await stack.wait_row(task_id, "completed")

        pages, cursor = [], None
        while True:
            params: dict[str, str | int] = {"user_id": user, "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = (await stack.http.get("/tasks", params=params)).json()
            pages.append([t["id"] for t in page["tasks"]])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        everything = (await stack.http.get("/tasks", params={"limit": 100})).json()
        by_status = await stack.http.get(
            "/tasks", params=[("user_id", user), ("status", "failed"), ("status", "running")]
        )
        completed = await stack.http.get("/tasks", params={"user_id": user, "status": "completed"})
        first = everything["tasks"][-1]["created_at"]
        future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        after_future = await stack.http.get(
            "/tasks", params={"user_id": user, "created_after": future}
        )
        before_future = await stack.http.get(
            "/tasks", params={"user_id": user, "created_before": future, "created_after": first}
        )
        bad_cursor = await stack.http.get("/tasks", params={"cursor": "bm90IGEgY3Vyc29y"})
        bad_limit = await stack.http.get("/tasks", params={"limit": 0})
        bad_status = await stack.http.get("/tasks", params={"status": "sleeping"})
        bad_date = await stack.http.get("/tasks", params={"created_after": "yesterday"})
        epoch = await stack.http.get("/tasks", params={"created_after": "1700000000"})
        typo = await stack.http.get("/tasks", params={"stauts": "failed"})

    assert pages == [ids[::-1][:2], ids[::-1][2:]]
    assert {*ids, other} <= {t["id"] for t in everything["tasks"]}
    assert by_status.json() == {"tasks": [], "next_cursor": None}
    assert {t["id"] for t in completed.json()["tasks"]} == set(ids)
    assert after_future.json()["tasks"] == []
    assert {t["id"] for t in before_future.json()["tasks"]} == set(ids)
    assert bad_cursor.status_code == 422 and "query.cursor" in bad_cursor.json()["message"]
    assert bad_limit.status_code == 422 and "query.limit" in bad_limit.json()["message"]
    assert bad_status.status_code == 422 and "query.status" in bad_status.json()["message"]
    assert bad_date.status_code == 422 and "query.created_after" in bad_date.json()["message"]
    assert epoch.status_code == 422 and "ISO 8601" in epoch.json()["message"]
    assert typo.status_code == 422 and "query.stauts" in typo.json()["message"]


async def test_text_postgres_cannot_store_is_422_naming_the_field(
    temporal_env: WorkflowEnvironment, database_url: str
) -> None:
    prefix = f"idle{uuid.uuid4().hex[:8]}"  # tasks started here stay pending
    app = create_app(api_settings(temporal_env, database_url, queue_prefix=prefix))
    bad_cursor = base64.urlsafe_b64encode(
        json.dumps({"t": "2025-01-01T00:00:00+00:00", "i": "task-\u0000"}).encode()
    ).decode()
    async with asgi_client(app) as http:
        held = await http.post(
            "/tasks",
            json={"description": "Hold me for approval", "options": {"require_approval": True}},
        )
        task_id = held.json()["task_id"]
        responses = {
            "query.user_id": await http.get("/tasks?user_id=%00"),
            "query.user_id ": await http.get("/tasks", params={"user_id": "a\u0000b"}),
            "query.cursor": await http.get("/tasks", params={"cursor": bad_cursor}),
            "path.task_id": await http.get("/tasks/task-%00"),
            "body.description": await http.post(
                "/tasks", json={"description": "abc\u0000defghijk"}
            ),
            "body.user_id": await http.post(
                "/tasks", json={"description": "A perfectly fine task", "user_id": "\u0000"}
            ),
            "body.comment": await http.post(
                f"/tasks/{task_id}/approve", json={"approved": False, "comment": "no\u0000"}
            ),
            "body.surrogate": await http.post(
                "/tasks",
                content=b'{"description": "A lone surrogate \\ud800 here"}',
                headers={"content-type": "application/json"},
            ),
        }

    assert held.status_code == 202, held.text
    for name, response in responses.items():
        assert response.status_code == 422, (name, response.text)
        assert response.json()["code"] == "validation_error", name
    assert "query.user_id" in responses["query.user_id"].json()["message"]
    assert "query.user_id" in responses["query.user_id "].json()["message"]
    assert "query.cursor" in responses["query.cursor"].json()["message"]
    assert "body.description" in responses["body.description"].json()["message"]
    assert "body.user_id" in responses["body.user_id"].json()["message"]
    assert "body.comment" in responses["body.comment"].json()["message"]
    assert "body.description" in responses["body.surrogate"].json()["message"]
