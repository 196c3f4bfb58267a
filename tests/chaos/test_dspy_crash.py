"""SIGKILL the worker in the middle of DSPy `react` steps: they complete, and no LM call that
finished before the kill runs again (each DSPy LM call is its own activity)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from mahsm.contracts.pipeline import Pipeline
from mahsm.contracts.task import TaskRequest, TaskStatus
from mahsm.tasks import start_task
from tests.chaos.conftest import ChaosStack
from tests.chaos.workload import (
    SHORT_TIMEOUTS,
    count,
    final_states,
    repeated_completions,
    wait_for_calls,
)
from tests.dspy.helpers import chat

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

RUNS = 4
TOOL_CALLS = 3
LLM_CALLS = TOOL_CALLS + 2  # one per tool call, the `finish` choice, the extraction
REPORT_GRACE_S = 1.0


def _react() -> Pipeline:
    return Pipeline.model_validate(
        {
            "name": "chaos-react",
            "inputs": {"question": "str"},
            "steps": [
                {
                    "name": "agent",
                    "kind": "signature",
                    "module": "react",
                    "signature": "question -> answer: int",
                    "tools": ["calculator"],
                    "max_iters": 6,
                }
            ],
            "outputs": {"answer": "{agent.answer}"},
        }
    )


def _scenario() -> dict[str, Any]:
    """React: `calculator` three times (n+n for n = 1, 2, 3), then `finish`, then extract."""

    def calc(n: int) -> str:
        return chat(
            next_thought=f"step {n}",
            next_tool_name="calculator",
            next_tool_args={"expression": f"{n}+{n}"},
        )

    finish = chat(next_thought="done", next_tool_name="finish", next_tool_args={})
    react = r"next_tool_name[\s\S]*"
    return {
        "latency_ms": 300,
        "jitter_ms": 200,
        "seed": 11,
        "rules": [
            {"purpose": "step", "match": react + "observation_2", "respond": {"content": finish}},
            {"purpose": "step", "match": react + "observation_1", "respond": {"content": calc(3)}},
            {"purpose": "step", "match": react + "observation_0", "respond": {"content": calc(2)}},
            {"purpose": "step", "match": "next_tool_name", "respond": {"content": calc(1)}},
            {"purpose": "step", "respond": {"content": chat(reasoning="2+4+6", answer=12)}},
        ],
    }


async def test_worker_sigkill_mid_react_repeats_no_finished_lm_call(
    chaos_stack: ChaosStack,
) -> None:
    stack = chaos_stack
    stack.worker_env = SHORT_TIMEOUTS
    await stack.start_servers(_scenario())
    worker = await stack.start_worker()
    client = await stack.client()
    handles = [
        await start_task(
            client,
            TaskRequest(
                description=f"chaos react {i}", pipeline=_react(), inputs={"question": f"q{i}"}
            ),
            queue_prefix=stack.prefix,
        )
        for i in range(RUNS)
    ]

    # Every run is past its second react iteration; none has finished its last call.
    await wait_for_calls(
        stack.calls,
        lambda e: count(e, "done", "step") >= 2 * RUNS,
        timeout_s=90,
        what="every react two LM calls in",
    )
    worker.kill()
    killed_at = time.time()
    at_kill = stack.calls()
    done = {(e["workflow_id"], e["activity_id"]) for e in at_kill if e["event"] == "done"}
    assert not any(aid == f"agent/dspy-{LLM_CALLS - 1}" for _, aid in done), "kill came too late"
    started = {(e["workflow_id"], e["activity_id"]) for e in at_kill if e["event"] == "start"}
    ended = {
        (e["workflow_id"], e["activity_id"])
        for e in at_kill
        if e["event"] in ("done", "fault") and float(e["ts"]) < killed_at - REPORT_GRACE_S
    }
    in_flight = started - ended

    await stack.start_worker()
    states = await final_states(handles, timeout_s=150)

    for state in states:
        assert state.status == TaskStatus.COMPLETED, (state.task_id, state.error)
        assert state.outputs == {"answer": 12}, state.task_id
    entries = stack.calls()
    completed = {(e["workflow_id"], e["activity_id"]) for e in entries if e["event"] == "done"}
    assert len(completed) == RUNS * LLM_CALLS
    assert {aid for _, aid in completed} == {f"agent/dspy-{n}" for n in range(LLM_CALLS)}
    repeated = repeated_completions(entries)
    finished_then_repeated = {key: t for key, t in repeated.items() if key not in in_flight}
    assert not finished_then_repeated, "LM calls completed before the kill ran again"
