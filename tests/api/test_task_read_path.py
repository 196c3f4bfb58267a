"""What `GET /tasks/{id}` reads: the row alone for a running task, row and subtasks once ended."""

from __future__ import annotations

from typing import Any

import pytest

from mahsm.api import task_access
from tests.api.conftest import StackFactory, subtask
from tests.engine_harness import AGGREGATE, answer_rule, plan_rule

HELD = {
    "rules": [
        plan_rule("held", [subtask("only", "The only step")]),
        answer_rule("The only step", "done"),
        AGGREGATE,
    ]
}
APPROVAL = {"description": "A held task: wait for approval", "options": {"require_approval": True}}


async def test_a_running_task_is_read_live_without_its_stored_subtasks(
    api_stack: StackFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[str] = []
    load_task = task_access.load_task

    async def counted(*args: Any, **kwargs: Any) -> Any:
        loads.append(args[1])
        return await load_task(*args, **kwargs)

    monkeypatch.setattr(task_access, "load_task", counted)
    async with api_stack(HELD) as stack:
        held = (await stack.http.post("/tasks", json=APPROVAL)).json()["task_id"]
        await stack.wait_row(held, "awaiting_approval")
        running = await stack.http.get(f"/tasks/{held}")
        assert loads == []  # the workflow's `state` answered: the row only told it runs

        started = await stack.http.post(
            "/tasks", json={"description": "A held task run to its end"}
        )
        assert started.status_code == 202, started.text
        done = started.json()["task_id"]
        await stack.wait_closed(done)
        await stack.wait_row(done, "completed")
        ended = await stack.http.get(f"/tasks/{done}")

    assert running.status_code == 200, running.text
    body = running.json()
    assert body["task"]["status"] == "awaiting_approval"
    assert [s["id"] for s in body["subtask_results"]] == ["only"]
    assert body["links"] == {"trace_id": None, "trace_url": None, "subtask_workflows": {}}
    assert ended.status_code == 200, ended.text
    assert loads == [done]  # an ended task is served from Postgres, subtasks included
    assert ended.json()["subtask_results"][0]["output"] == "done"
