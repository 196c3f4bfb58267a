"""LLM fault injection over 50 tasks: transient errors are retried to success; non-retryable
errors fail their task at once, with the cause visible through the API."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowHandle

from mahsm.contracts.task import SubtaskStatus, TaskRequest, TaskState, TaskStatus
from mahsm.tasks import start_task
from tests.chaos.conftest import ChaosStack
from tests.chaos.workload import (
    assert_right_result,
    final_states,
    fixed_task_id,
    repeated_completions,
    scenario,
    start_tasks,
)

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

TASKS = 50
LOCKED = 3
LOCKED_RULES: list[dict[str, Any]] = [
    {
        "purpose": "plan",
        "match": "shape locked",
        "respond": {
            "plan": {
                "subtasks": [
                    {
                        "id": "open",
                        "description": "Read the public data",
                        "required_capabilities": ["data_analysis"],
                    },
                    {
                        "id": "locked",
                        "description": "Call the locked vendor API",
                        "required_capabilities": ["data_analysis"],
                    },
                    {
                        "id": "report",
                        "description": "Report on both",
                        "depends_on": ["open", "locked"],
                        "required_capabilities": ["data_analysis"],
                    },
                ]
            }
        },
    },
    {"purpose": "agent_step", "subtask": "locked", "respond": {"error": 401}},
    {"purpose": "agent_step", "subtask": "open", "respond": {"content": "public data read"}},
]


async def test_transient_faults_retried_and_auth_errors_fail_fast_visibly(
    chaos_stack: ChaosStack,
) -> None:
    stack = chaos_stack
    await stack.start_servers(
        scenario(
            latency_ms=20, jitter_ms=150, fault_rate=0.3, tools=False, extra_rules=LOCKED_RULES
        )
    )
    await stack.start_worker()
    await stack.start_api()
    client = await stack.client()
    # Fixed task ids: the same faults are injected in every run (no flaky tail).
    handles = await start_tasks(client, stack.prefix, TASKS, fixed_ids=True)
    locked: list[WorkflowHandle[Any, TaskState]] = list(
        await asyncio.gather(
            *(
                start_task(
                    client,
                    TaskRequest(description=f"chaos locked task {i:03d} shape locked"),
                    queue_prefix=stack.prefix,
                    task_id=fixed_task_id(f"locked-{i}"),
                )
                for i in range(LOCKED)
            )
        )
    )

    states = await final_states(handles, timeout_s=240)
    for state in states:
        assert_right_result(state)
    failed = await final_states(locked, timeout_s=60)

    entries = stack.calls()
    faults = [e for e in entries if e["event"] == "fault"]
    assert {e["status"] for e in faults} >= {429, 500, None}, "every transient kind was injected"
    transient = [e for e in faults if e["status"] != 401]
    assert len(transient) > 0.15 * sum(1 for e in entries if e["event"] == "start")
    assert not repeated_completions(entries), "an LLM call completed twice"

    async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as http:
        for state in failed:
            assert state.status == TaskStatus.FAILED
            assert state.subtask("report").result.status == SubtaskStatus.BLOCKED
            calls = [e for e in entries if e["task_id"] == state.task_id]
            auth = [e for e in calls if e["event"] == "fault" and e["status"] == 401]
            assert len(auth) == 1, "a 401 is not retried"
            key = (auth[0]["workflow_id"], auth[0]["activity_id"])
            attempts = [
                e["attempt"]
                for e in calls
                if e["event"] == "start" and (e["workflow_id"], e["activity_id"]) == key
            ]
            assert max(attempts) == auth[0]["attempt"], "no attempt after the 401"

            body = (await http.get(f"/tasks/{state.task_id}")).json()
            assert body["task"]["status"] == "failed"
            assert "401" in body["task"]["error"] and "locked" in body["task"]["error"]
            subtasks = {s["id"]: s for s in body["subtask_results"]}
            assert subtasks["locked"]["status"] == "failed"
            assert "401" in subtasks["locked"]["error"]
            assert subtasks["report"]["status"] == "blocked"
