"""Submitting known tasks through the real API and waiting for their final state."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from mahsm.contracts.task import TaskState, TaskStatus
from tests.engine_harness import AGGREGATE, Engine

ONE_TOOL_CALL_PLAN = {
    "subtasks": [
        {
            "id": "calc",
            "description": "Calc: compute 6*7 with the calculator",
            "required_capabilities": ["data_analysis"],
        }
    ]
}

SCENARIO: dict[str, Any] = {
    "rules": [
        {
            "purpose": "agent_step",
            "after_tool": False,
            "respond": {"tool_calls": [{"name": "calculator", "arguments": {"expression": "6*7"}}]},
        },
        {"purpose": "agent_step", "respond": {"content": "calc={last_tool_result}"}},
        AGGREGATE,
    ]
}


async def run_task(
    http: httpx.AsyncClient, engine: Engine, description: str, key: str
) -> dict[str, Any]:
    """Submit a one-subtask task (one tool call, two LLM calls) through the API.

    Returns the task's final state (the workflow's result) as JSON, once its Postgres row
    says it completed.
    """
    headers = {"Authorization": f"Bearer {key}"}
    answer = await http.post(
        "/tasks", json={"description": description, "plan": ONE_TOOL_CALL_PLAN}, headers=headers
    )
    assert answer.status_code == 202, answer.text
    task_id = answer.json()["task_id"]
    state = await engine.client.get_workflow_handle(task_id, result_type=TaskState).result()
    assert state.status == TaskStatus.COMPLETED, state
    for _ in range(100):
        row = await engine.task_row(task_id)
        if row is not None and row["status"] == "completed":
            return state.model_dump(mode="json")
        await asyncio.sleep(0.1)
    raise AssertionError(f"the row of {task_id} did not reach completed")
