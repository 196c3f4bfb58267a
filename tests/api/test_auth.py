"""API keys: every endpoint but /health needs one, and users only see their own tasks."""

from __future__ import annotations

import uuid

from tests.api.conftest import StackFactory, subtask
from tests.engine_harness import AGGREGATE, answer_rule, plan_rule

KEYS = {"key-alice": "alice", "key-bob": "bob"}
ALICE = {"Authorization": "Bearer key-alice"}
BOB = {"Authorization": "Bearer key-bob"}

HELD = {
    "rules": [
        plan_rule("held", [subtask("only", "The only step")]),
        answer_rule("The only step", "done"),
        AGGREGATE,
    ]
}


def endpoints(task_id: str) -> list[tuple[str, str, dict[str, object] | None]]:
    return [
        ("POST", "/tasks", {"description": "A task without a key"}),
        ("GET", "/tasks", None),
        ("GET", f"/tasks/{task_id}", None),
        ("POST", f"/tasks/{task_id}/cancel", None),
        ("POST", f"/tasks/{task_id}/approve", {"approved": True}),
        ("GET", f"/tasks/{task_id}/events", None),
        ("GET", "/agents", None),
    ]


async def test_every_endpoint_but_health_needs_a_valid_key(api_stack: StackFactory) -> None:
    task_id = f"task-{uuid.uuid4()}"
    async with api_stack(HELD, api_keys=KEYS) as stack:
        health = await stack.http.get("/health")
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic a2V5"}):
            for method, path, body in endpoints(task_id):
                response = await stack.http.request(method, path, json=body, headers=headers)
                assert response.status_code == 401, (method, path, headers)
                assert response.headers["www-authenticate"].startswith("Bearer")
                assert response.json()["code"] == "unauthorized"
                assert "wrong" not in response.text
        allowed = await stack.http.get("/tasks", headers=ALICE)

    assert health.status_code == 200
    assert allowed.status_code == 200


async def test_users_see_and_act_on_their_own_tasks_only(api_stack: StackFactory) -> None:
    async with api_stack(HELD, api_keys=KEYS) as stack:
        submitted = await stack.http.post(
            "/tasks",
            json={"description": "Alice's held task", "options": {"require_approval": True}},
            headers=ALICE,
        )
        task_id = submitted.json()["task_id"]
        named_self = await stack.http.post(
            "/tasks", json={"description": "Alice names herself", "user_id": "alice"}, headers=ALICE
        )
        impersonation = await stack.http.post(
            "/tasks",
            json={"description": "Alice claims to be Bob", "user_id": "bob"},
            headers=ALICE,
        )
        held = await stack.wait_until(
            task_id, lambda b: b["task"]["status"] == "awaiting_approval", headers=ALICE
        )
        await stack.wait_row(task_id, "awaiting_approval")

        bob_get = await stack.http.get(f"/tasks/{task_id}", headers=BOB)
        bob_cancel = await stack.http.post(f"/tasks/{task_id}/cancel", headers=BOB)
        bob_approve = await stack.http.post(
            f"/tasks/{task_id}/approve", json={"approved": True}, headers=BOB
        )
        bob_events = await stack.http.get(f"/tasks/{task_id}/events", headers=BOB)
        bob_list = await stack.http.get("/tasks", headers=BOB)
        bob_list_alice = await stack.http.get("/tasks", params={"user_id": "alice"}, headers=BOB)
        alice_list = await stack.http.get("/tasks", headers=ALICE)
        alice_cancel = await stack.http.post(f"/tasks/{task_id}/cancel", headers=ALICE)

    assert submitted.status_code == 202 and named_self.status_code == 202
    assert held["task"]["user_id"] == "alice"
    assert impersonation.status_code == 403
    assert impersonation.json()["code"] == "user_mismatch"
    for response in (bob_get, bob_cancel, bob_approve, bob_events):
        assert response.status_code == 404
        assert response.json()["code"] == "task_not_found"
    assert task_id not in {t["id"] for t in bob_list.json()["tasks"]}
    assert all(t["user_id"] == "bob" for t in bob_list.json()["tasks"])
    assert bob_list_alice.json() == {"tasks": [], "next_cursor": None}
    alice_tasks = alice_list.json()["tasks"]
    assert task_id in {t["id"] for t in alice_tasks}
    assert all(t["user_id"] == "alice" for t in alice_tasks)
    assert alice_cancel.status_code == 202
