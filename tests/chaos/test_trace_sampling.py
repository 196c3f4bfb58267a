"""Head sampling of traces: a task is traced whole or not at all, even across a worker restart.

A worker process samples half the tasks (OpenTelemetry's `parentbased_traceidratio`, from the
standard variables) and exports to a local receiver through the Langfuse SDK. It is stopped in
the middle of every task's DAG and a new worker replays the histories: a replay must make the
same decision, so no task ends up with part of a trace.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict

import asyncpg
import pytest

from tests.chaos.conftest import ChaosStack
from tests.chaos.workload import (
    SHAPES,
    SHORT_TIMEOUTS,
    assert_right_result,
    final_states,
    scenario,
    start_tasks,
    wait_mid_dag,
)
from tests.observability.otlp_receiver import OtlpReceiver, ReceivedSpan

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

TASKS = 16  # at a ratio of 1/2, all sampled or none is a chance of 2 in 65,536


def sampling_env(receiver: OtlpReceiver) -> dict[str, str]:
    return {
        **SHORT_TIMEOUTS,
        "LANGFUSE_PUBLIC_KEY": "pk-lf-sampling",
        "LANGFUSE_SECRET_KEY": "sk-lf-sampling",
        "LANGFUSE_HOST": receiver.url,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.5",
    }


def spans_by_task(spans: list[ReceivedSpan]) -> dict[str, list[ReceivedSpan]]:
    """Every span that names a task (workflow spans by their trace, calls by their ids)."""
    task_of_trace = {s.trace_id: s.attributes["mahsm.task_id"] for s in spans if s.name == "task"}
    found: dict[str, list[ReceivedSpan]] = defaultdict(list)
    for span in spans:
        task_id = span.attributes.get("mahsm.task_id") or task_of_trace.get(span.trace_id)
        if task_id:
            found[task_id].append(span)
    return found


async def test_a_sampled_task_is_traced_whole_and_the_others_not_at_all_across_a_restart(
    chaos_stack: ChaosStack,
) -> None:
    stack = chaos_stack
    receiver = OtlpReceiver()
    receiver.start()
    try:
        stack.worker_env = sampling_env(receiver)
        await stack.start_servers(scenario(latency_ms=300, jitter_ms=200))
        worker = await stack.start_worker()
        handles = await start_tasks(await stack.client(), stack.prefix, TASKS)
        await wait_mid_dag(stack.calls, TASKS)
        await asyncio.to_thread(worker.stop)  # a clean stop exports the spans it ended
        replaying = await stack.start_worker()
        states = await final_states(handles, timeout_s=150)
        await asyncio.to_thread(replaying.stop)
    finally:
        receiver.stop()
    for state in states:
        assert_right_result(state)

    traced = spans_by_task(receiver.spans)
    assert set(traced) <= {s.task_id for s in states}
    sampled = [s for s in states if s.task_id in traced]
    assert 0 < len(sampled) < TASKS, f"{len(sampled)} of {TASKS} tasks traced at a ratio of 1/2"
    connection = await asyncpg.connect(stack.database_url)
    try:
        rows = await connection.fetch(
            "SELECT id, trace_id FROM tasks WHERE id = ANY($1::text[])", [s.task_id for s in states]
        )
    finally:
        await connection.close()
    stored = {row["id"]: row["trace_id"] for row in rows}
    assert len(stored) == TASKS

    for state in states:
        if state.task_id not in traced:
            # Not a single span, and no link from the dashboard to a trace that has none.
            assert stored[state.task_id] is None, state.task_id
            continue
        spans = traced[state.task_id]
        (task,) = [s for s in spans if s.name == "task"]
        assert {s.trace_id for s in spans} == {task.trace_id}, "one trace per task"
        assert len({s.span_id for s in spans}) == len(spans), "the replay exported nothing twice"
        names = Counter(s.name for s in spans)
        subtasks = [sid for sid, _ in SHAPES[state.description.rsplit(" ", 1)[-1]]]
        assert names["plan"] == names["aggregate"] == 1, names
        assert {n for n in names if n.startswith("subtask ")} == {f"subtask {s}" for s in subtasks}
        assert all(names[f"subtask {s}"] == 1 for s in subtasks), names
        assert names["tool calculator"] >= len(subtasks), names
        answered = [s for s in spans if s.name.startswith("llm ") and not s.error]
        # The planner, two steps per subtask (the calculator, then the answer), the aggregator.
        assert len(answered) >= 2 + 2 * len(subtasks), names
        assert sum(s.attributes["gen_ai.usage.input_tokens"] for s in answered) == (
            state.usage.input_tokens
        )
        assert stored[state.task_id] == task.trace_id
