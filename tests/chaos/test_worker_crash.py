"""SIGKILL the worker process while tasks are in the middle of their DAGs and agent loops."""

from __future__ import annotations

import time

import pytest

from tests.chaos.conftest import ChaosStack
from tests.chaos.workload import (
    SHORT_TIMEOUTS,
    assert_right_result,
    count,
    final_states,
    repeated_completions,
    scenario,
    start_tasks,
    wait_mid_dag,
)

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

TASKS = 24
# A `done` logged this shortly before the kill may not have reached the server yet: that call
# was still in flight (its completion died with the worker), so it may run again.
REPORT_GRACE_S = 1.0


async def test_worker_sigkill_loses_nothing_and_repeats_no_finished_llm_call(
    chaos_stack: ChaosStack,
) -> None:
    stack = chaos_stack
    stack.worker_env = SHORT_TIMEOUTS
    await stack.start_servers(scenario(latency_ms=300, jitter_ms=200))
    worker = await stack.start_worker()
    handles = await start_tasks(await stack.client(), stack.prefix, TASKS)

    # Every task is planned and inside its DAG; none has reached aggregation.
    before = await wait_mid_dag(stack.calls, TASKS)
    assert count(before, "start", "aggregate") == 0, "kill came too late: tasks are aggregating"
    worker.kill()
    killed_at = time.time()
    at_kill = stack.calls()
    started = {(e["workflow_id"], e["activity_id"]) for e in at_kill if e["event"] == "start"}
    ended = {
        (e["workflow_id"], e["activity_id"])
        for e in at_kill
        if e["event"] in ("done", "fault") and float(e["ts"]) < killed_at - REPORT_GRACE_S
    }
    in_flight = started - ended
    assert in_flight, "the kill should have interrupted LLM calls"
    # Agents run inline in their task's workflow, and the kill came in the middle of agent
    # loops: some agent had finished its first LLM step but not its last.
    done_at_kill = {(e["workflow_id"], e["activity_id"]) for e in at_kill if e["event"] == "done"}
    agent_steps = {key for key in done_at_kill if "/llm-" in key[1]}
    assert agent_steps and all("." not in wf for wf, _ in agent_steps)
    assert any(
        (wf, aid.replace("/llm-0", "/llm-1")) not in done_at_kill
        for wf, aid in agent_steps
        if aid.endswith("/llm-0")
    ), "the kill should have come between the steps of an agent loop"
    done_before_kill = count(at_kill, "done", "agent_step")

    await stack.start_worker()
    states = await final_states(handles, timeout_s=150)

    for state in states:
        assert_right_result(state)
    entries = stack.calls()
    assert count(entries, "done", "agent_step") > done_before_kill
    repeated = repeated_completions(entries)
    finished_then_repeated = {key: times for key, times in repeated.items() if key not in in_flight}
    assert not finished_then_repeated, "LLM calls completed before the kill ran again"
    for key in repeated:
        assert key in in_flight
