"""SIGKILL the worker process while the planner is revising a task's plan (replanning)."""

from __future__ import annotations

import pytest

from mahsm.contracts.task import ReplanOptions, SubtaskStatus, TaskOptions, TaskRequest, TaskStatus
from mahsm.tasks import start_task
from tests.chaos.conftest import ChaosStack
from tests.chaos.workload import (
    SHORT_TIMEOUTS,
    final_states,
    repeated_completions,
    wait_for_calls,
)
from tests.workflows.test_replan import DESCRIPTION, REVISION, replan_rule, scenario

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]


async def test_a_worker_killed_mid_replan_repeats_no_finished_call(
    chaos_stack: ChaosStack,
) -> None:
    stack = chaos_stack
    stack.worker_env = SHORT_TIMEOUTS
    # The revision takes 2 s (calls time out after 2.5 s here): the kill lands mid-answer.
    spec = scenario(stack.call_log, replan_rule(REVISION, latency_ms=2000))
    del spec["call_log"]  # the stack sets MAHSM_SCRIPTED_CALL_LOG for every worker
    await stack.start_servers(spec)
    worker = await stack.start_worker()
    handle = await start_task(
        await stack.client(),
        TaskRequest(
            description=DESCRIPTION, options=TaskOptions(replan=ReplanOptions(max_replans=1))
        ),
        queue_prefix=stack.prefix,
    )

    await wait_for_calls(
        stack.calls,
        lambda entries: any(
            e["event"] == "start" and e["activity_id"] == "replan-1-0" for e in entries
        ),
        timeout_s=60,
        what="the revision under way",
    )
    worker.kill()
    at_kill = stack.calls()
    # Calls done before the revision started reached the server: the workflow acted on them.
    replan_start = next(i for i, e in enumerate(at_kill) if e["activity_id"] == "replan-1-0")
    finished = {
        (e["workflow_id"], e["activity_id"]) for e in at_kill[:replan_start] if e["event"] == "done"
    }
    assert {aid for _, aid in finished} == {
        "plan-0",
        "fetch/llm-0",
        "summary/llm-0",
        "analyze/llm-0",  # logged `fault` (HTTP 400), not `done`: absent
    } - {"analyze/llm-0"}
    assert not any(e["activity_id"] == "replan-1-0" and e["event"] == "done" for e in at_kill), (
        "the kill came too late: the revision had finished"
    )

    await stack.start_worker()
    (state,) = await final_states([handle], timeout_s=60)

    assert state.status == TaskStatus.COMPLETED, state.error
    assert [r.number for r in state.revisions] == [1]
    assert state.subtask("report_alt").result.status == SubtaskStatus.COMPLETED
    repeated = repeated_completions(stack.calls())
    assert not set(repeated) & finished, "LLM calls completed before the kill ran again"
    agent_starts = [
        e["activity_id"]
        for e in stack.calls()
        if e["event"] == "start" and e["activity_id"].startswith(("fetch/", "summary/"))
    ]
    assert sorted(agent_starts) == ["fetch/llm-0", "summary/llm-0"]
