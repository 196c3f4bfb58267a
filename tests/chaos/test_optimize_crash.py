"""SIGKILL the worker in the middle of an optimization run: it completes on a new worker,
replaying the LM calls finished before the kill from its memo instead of the provider."""

from __future__ import annotations

import time

import pytest

from mahsm.queues import tasks_queue
from mahsm.workflows.optimize_workflow import OptimizeWorkflow
from tests.chaos.conftest import ChaosStack
from tests.chaos.workload import SHORT_TIMEOUTS, count, wait_for_calls
from tests.dspy.test_optimize import optimize_request, optimize_scenario

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

REPORT_GRACE_S = 1.0


async def test_worker_sigkill_mid_optimization_replays_finished_calls(
    chaos_stack: ChaosStack,
) -> None:
    stack = chaos_stack
    stack.worker_env = SHORT_TIMEOUTS
    await stack.start_servers(optimize_scenario(latency_ms=400))
    worker = await stack.start_worker()
    client = await stack.client()
    handle = await client.start_workflow(
        OptimizeWorkflow.run,
        optimize_request("chaos-colours", train=6, dev=6),
        id="optimize-chaos",
        task_queue=tasks_queue(stack.prefix),
    )
    await wait_for_calls(
        stack.calls, lambda e: count(e, "done", "step") >= 8, timeout_s=90, what="8 LM calls"
    )
    progress = (await handle.query(OptimizeWorkflow.state)).progress
    assert progress.done >= 4 and progress.planned == 18  # visible while it runs
    worker.kill()
    killed_at = time.time()
    at_kill = stack.calls()
    finished = {
        e["digest"]
        for e in at_kill
        if e["event"] == "done" and float(e["ts"]) < killed_at - REPORT_GRACE_S
    }

    await stack.start_worker()
    state = await handle.result()

    assert state.status == "completed", state.error
    result = state.result
    assert result is not None and (result.baseline_score, result.score) == (0.0, 1.0)
    assert result.lm_calls_replayed >= len(finished) >= 4
    done = [e["digest"] for e in stack.calls() if e["event"] == "done"]
    assert not [d for d in finished if done.count(d) > 1], "a finished LM call ran again"
    assert len(done) < 2 * result.lm_calls  # a restart from scratch would pay for them all
