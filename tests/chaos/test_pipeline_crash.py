"""SIGKILL the worker process in the middle of pipeline runs: they complete, and no LLM call
that finished before the kill runs again."""

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

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

RUNS = 8
STEPS = 6
REPORT_GRACE_S = 1.0


def _chain() -> Pipeline:
    """STEPS llm steps, each echoing the previous one's answer (the scripted default for
    `step` calls echoes the prompt), then a transform and a parallel pair."""
    steps: list[dict[str, Any]] = [{"name": "s0", "kind": "llm", "prompt": "seed {seed}"}]
    steps += [
        {"name": f"s{i}", "kind": "llm", "prompt": f"{{s{i - 1}}} +{i}"} for i in range(1, STEPS)
    ]
    steps.append(
        {
            "name": "pair",
            "kind": "parallel",
            "steps": [
                {"name": "left", "kind": "llm", "prompt": f"L {{s{STEPS - 1}}}"},
                {"name": "right", "kind": "llm", "prompt": f"R {{s{STEPS - 1}}}"},
            ],
        }
    )
    return Pipeline.model_validate(
        {
            "name": "chaos-chain",
            "inputs": {"seed": "int"},
            "steps": steps,
            "outputs": {"left": "{pair.left}", "right": "{pair.right}"},
        }
    )


def _expected(seed: int) -> dict[str, str]:
    text = f"seed {seed}" + "".join(f" +{i}" for i in range(1, STEPS))
    return {"left": f"L {text}", "right": f"R {text}"}


async def test_worker_sigkill_mid_pipeline_repeats_no_finished_llm_call(
    chaos_stack: ChaosStack,
) -> None:
    stack = chaos_stack
    stack.worker_env = SHORT_TIMEOUTS
    await stack.start_servers({"latency_ms": 300, "jitter_ms": 200, "seed": 7, "rules": []})
    worker = await stack.start_worker()
    client = await stack.client()
    pipeline = _chain()
    handles = [
        await start_task(
            client,
            TaskRequest(description=f"chaos pipeline {i}", pipeline=pipeline, inputs={"seed": i}),
            queue_prefix=stack.prefix,
        )
        for i in range(RUNS)
    ]

    # Every run has finished at least two steps and none has reached its parallel pair.
    at_kill = await wait_for_calls(
        stack.calls,
        lambda e: count(e, "done", "step") >= 2 * RUNS,
        timeout_s=90,
        what="every pipeline two steps in",
    )
    worker.kill()
    killed_at = time.time()
    at_kill = stack.calls()
    done = {(e["workflow_id"], e["activity_id"]) for e in at_kill if e["event"] == "done"}
    assert not any(aid.startswith(("left/", "right/")) for _, aid in done), "kill came too late"
    started = {(e["workflow_id"], e["activity_id"]) for e in at_kill if e["event"] == "start"}
    ended = {
        (e["workflow_id"], e["activity_id"])
        for e in at_kill
        if e["event"] in ("done", "fault") and float(e["ts"]) < killed_at - REPORT_GRACE_S
    }
    in_flight = started - ended
    assert in_flight, "the kill should have interrupted LLM calls"

    await stack.start_worker()
    states = await final_states(handles, timeout_s=150)

    for index, state in enumerate(states):
        assert state.status == TaskStatus.COMPLETED, (state.task_id, state.error)
        assert state.outputs == _expected(index), state.task_id
    entries = stack.calls()
    completed = {(e["workflow_id"], e["activity_id"]) for e in entries if e["event"] == "done"}
    assert len(completed) == RUNS * (STEPS + 2)  # every step's one call, each run
    repeated = repeated_completions(entries)
    finished_then_repeated = {key: t for key, t in repeated.items() if key not in in_flight}
    assert not finished_then_repeated, "LLM calls completed before the kill ran again"
