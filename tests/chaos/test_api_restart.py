"""Kill the API mid-run: tasks are unaffected, and a new API process serves their state."""

from __future__ import annotations

import httpx
import pytest

from tests.chaos.conftest import ChaosStack
from tests.chaos.workload import (
    assert_right_result,
    count,
    description,
    expected_outputs,
    expected_result,
    final_states,
    scenario,
    wait_for_calls,
)

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

TASKS = 20


async def test_api_killed_mid_run_tasks_go_on_and_a_new_api_serves_them(
    chaos_stack: ChaosStack,
) -> None:
    stack = chaos_stack
    await stack.start_servers(scenario(latency_ms=300, jitter_ms=200))
    await stack.start_worker()
    api = await stack.start_api()
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as http:
        task_ids = []
        for i in range(TASKS):
            response = await http.post("/tasks", json={"description": description(i)})
            assert response.status_code == 202, response.text
            task_ids.append(response.json()["task_id"])
        await wait_for_calls(
            stack.calls,
            lambda e: count(e, "done", "agent_step") >= TASKS,
            timeout_s=90,
            what="tasks running their DAGs",
        )
        first = (await http.get(f"/tasks/{task_ids[0]}")).json()
        assert first["task"]["status"] in ("planning", "running"), first

    api.kill()
    steps_at_kill = count(stack.calls(), "done", "agent_step")
    # With no API at all, the tasks keep going...
    await wait_for_calls(
        stack.calls,
        lambda e: count(e, "done", "agent_step") >= steps_at_kill + TASKS,
        timeout_s=90,
        what="progress while the API is down",
    )
    client = await stack.client()
    states = await final_states([client.get_workflow_handle(t) for t in task_ids], timeout_s=180)
    for state in states:
        assert_right_result(state)

    # ...and a new API process serves their final state.
    await stack.start_api()
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as http:
        for i, task_id in enumerate(task_ids):
            response = await http.get(f"/tasks/{task_id}")
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["task"]["status"] == "completed", body
            assert body["task"]["result"] == expected_result(description(i))
            outputs = {s["id"]: s["output"] for s in body["subtask_results"]}
            assert outputs == expected_outputs(description(i).rsplit(" ", 1)[-1])
