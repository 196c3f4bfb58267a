"""TaskWorkflow control: cancellation in every phase, scheduling order, budgets, timeouts."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from mahsm.contracts.task import (
    Budget,
    Capability,
    SubtaskStatus,
    TaskOptions,
    TaskRequest,
    TaskStatus,
)
from tests.engine_harness import running_engine

AGGREGATE = {"purpose": "aggregate", "respond": {"content": "FINAL:\n{context}"}}


def subtask(sid: str, *, deps: list[str] | None = None, priority: int = 5) -> dict[str, Any]:
    return {
        "id": sid,
        "description": f"Work item {sid}",
        "required_capabilities": ["data_analysis"],
        "depends_on": deps or [],
        "priority": priority,
    }


def scenario(
    subtasks: list[dict[str, Any]],
    *,
    plan_latency_ms: int = 0,
    agent_latency_ms: int = 0,
    aggregate_latency_ms: int = 0,
) -> dict[str, Any]:
    return {
        "rules": [
            {
                "purpose": "plan",
                "latency_ms": plan_latency_ms,
                "respond": {"plan": {"subtasks": subtasks}},
            },
            {
                "purpose": "agent_step",
                "latency_ms": agent_latency_ms,
                "respond": {"content": "item done"},
            },
            {**AGGREGATE, "latency_ms": aggregate_latency_ms},
        ]
    }


@pytest.mark.parametrize("phase", ["planning", "aggregating", "waiting_for_pool"])
async def test_cancellation_in_any_phase_ends_the_task_cancelled(
    engine_factory, phase: str
) -> None:
    kwargs: dict[str, Any] = {}
    if phase == "planning":
        spec = scenario([subtask("a")], plan_latency_ms=30_000)
        reached = lambda s: s.status == TaskStatus.PLANNING  # noqa: E731
    elif phase == "aggregating":  # two subtasks: a single one has no aggregation call
        spec = scenario([subtask("a"), subtask("b")], aggregate_latency_ms=30_000)
        reached = lambda s: (  # noqa: E731
            bool(s.subtasks) and all(i.result.status == "completed" for i in s.subtasks)
        )
    else:
        plan = [{**subtask("a"), "required_capabilities": ["web_scraping"]}]
        spec = scenario(plan)
        kwargs["capabilities"] = [Capability.DATA_ANALYSIS]
        reached = lambda s: bool(s.subtasks) and s.subtask("a").result.waiting_for is not None  # noqa: E731
    async with engine_factory(spec, **kwargs) as engine:
        handle = await engine.start(TaskRequest(description=f"Cancel me while {phase}"))
        await engine.wait_for(handle, reached)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await engine.state(handle)
        row = await engine.task_row(handle.id)

    assert state.status == TaskStatus.CANCELLED, state.error
    assert row is not None and row["status"] == "cancelled"
    if phase == "waiting_for_pool":
        assert state.subtask("a").result.status == SubtaskStatus.CANCELLED
        assert state.subtask("a").result.waiting_for is None


async def test_task_timeout_during_planning_ends_timed_out(engine_factory) -> None:
    async with engine_factory(scenario([subtask("a")], plan_latency_ms=30_000)) as engine:
        handle = await engine.start(
            TaskRequest(description="Plan too slowly", options=TaskOptions(task_timeout_s=1.5))
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await engine.state(handle)

    assert state.status == TaskStatus.TIMED_OUT and state.error == "task timed out after 1.5s"


async def test_max_parallel_bounds_concurrency_and_priority_orders_starts(engine_factory) -> None:
    plan = [
        subtask("low", priority=1),
        subtask("high", priority=9),
        subtask("mid", priority=5),
        subtask("high2", priority=9),
    ]
    async with engine_factory(scenario(plan, agent_latency_ms=150)) as engine:
        serial = await engine.start(
            TaskRequest(description="One at a time please", options=TaskOptions(max_parallel=1))
        )
        one_at_a_time = await serial.result()
        paired = await engine.start(
            TaskRequest(description="Two at a time please", options=TaskOptions(max_parallel=2))
        )
        two_at_a_time = await paired.result()

    order = sorted(one_at_a_time.subtasks, key=lambda s: s.result.started_at)
    assert [s.subtask.id for s in order] == ["high", "high2", "mid", "low"]
    for earlier, later in zip(order, order[1:], strict=False):
        assert earlier.result.finished_at <= later.result.started_at

    intervals = [(s.result.started_at, s.result.finished_at) for s in two_at_a_time.subtasks]
    for start, _ in intervals:
        running = sum(1 for s, f in intervals if s <= start < f)
        assert running <= 2
    assert max(sum(1 for s, f in intervals if s <= start < f) for start, _ in intervals) == 2


async def test_spent_budget_keeps_new_subtasks_from_starting(engine_factory) -> None:
    """Two parallel agents each stay under the budget; together they spend it, so the
    subtask depending on both never starts."""
    plan = [subtask("left"), subtask("right"), subtask("join", deps=["left", "right"])]
    description = "Spend the budget in parallel"
    async with engine_factory(scenario(plan)) as engine:
        probe = await engine.start(
            TaskRequest(description=description, options=TaskOptions(require_approval=True))
        )
        held = await engine.wait_for(probe, lambda s: s.status == TaskStatus.AWAITING_APPROVAL)
        await probe.cancel()
        unbounded = await (await engine.start(TaskRequest(description=description))).result()
        left = unbounded.subtask("left").result.usage.total_tokens
        right = unbounded.subtask("right").result.usage.total_tokens

        budget = Budget(max_total_tokens=held.usage.total_tokens + left + right - 1)
        handle = await engine.start(
            TaskRequest(description=description, options=TaskOptions(budget=budget))
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await engine.state(handle)

    assert state.subtask("left").result.status == SubtaskStatus.COMPLETED
    assert state.subtask("right").result.status == SubtaskStatus.COMPLETED
    join = state.subtask("join").result
    assert join.status == SubtaskStatus.CANCELLED and join.started_at is None
    assert "not started: token budget spent" in (join.error or "")
    assert state.status == TaskStatus.FAILED and "budget exceeded" in (state.error or "")


async def test_nul_in_model_output_is_stored_safely(engine_factory) -> None:
    spec = {
        "rules": [
            {"purpose": "plan", "respond": {"plan": {"subtasks": [subtask("a")]}}},
            {"purpose": "agent_step", "respond": {"content": "before\x00after"}},
            AGGREGATE,
        ]
    }
    async with engine_factory(spec) as engine:
        handle = await engine.start(TaskRequest(description="Answer with a NUL inside"))
        state = await handle.result()
        rows = await engine.subtask_rows(handle.id)

    assert state.subtask("a").result.output == "before\x00after"
    assert rows["a"]["output"] == "before\ufffdafter"


async def test_approval_timeout_ends_the_task_timed_out(
    time_skipping_env: WorkflowEnvironment, db_pool, data_dir
) -> None:
    """A day-long approval window, skipped in test time by the time-skipping server."""
    async with running_engine(
        client=time_skipping_env.client,
        pool=db_pool,
        data_dir=data_dir,
        scenario=scenario([subtask("a")]),
    ) as engine:
        handle = await engine.start(
            TaskRequest(
                description="Nobody will approve this",
                options=TaskOptions(require_approval=True, task_timeout_s=2 * 86400),
            )
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await engine.state(handle)

    assert state.status == TaskStatus.TIMED_OUT
    assert state.error == "no approval within 86400s"
    assert state.subtask("a").result.started_at is None


async def test_subtasks_needing_the_same_capabilities_share_one_pool_lookup(engine_factory) -> None:
    plan = [subtask(f"s{n}") for n in range(4)] + [
        {**subtask("web"), "required_capabilities": ["web_scraping"]}
    ]
    async with engine_factory(scenario(plan)) as engine:
        handle = await engine.start(TaskRequest(description="Fan out over one pool"))
        await handle.result()
        # The lookup runs as a local activity: one marker in the task's history per lookup.
        lookups = [
            event.marker_recorded_event_attributes.marker_name
            async for event in handle.fetch_history_events()
            if event.HasField("marker_recorded_event_attributes")
            and b"resolve_pool" in event.SerializeToString()
        ].count("core_local_activity")

    assert lookups == 2  # one per distinct capability set, not one per subtask


async def test_an_agent_cancelled_outside_the_task_is_a_failed_branch(engine_factory) -> None:
    plan = [subtask("slow"), subtask("after", deps=["slow"]), subtask("other")]
    spec = {
        "rules": [
            {"purpose": "plan", "respond": {"plan": {"subtasks": plan}}},
            {
                "purpose": "agent_step",
                "match": r"Your subtask:\s*Work item slow",
                "latency_ms": 30_000,
                "respond": {"content": "never"},
            },
            {"purpose": "agent_step", "respond": {"content": "item done"}},
            AGGREGATE,
        ]
    }
    # Agents run in child workflows (the operator's choice, or a task whose history is long).
    async with engine_factory(spec, inline_history_events=0) as engine:
        handle = await engine.start(TaskRequest(description="Cancel one agent from the UI"))
        await engine.wait_for(
            handle,
            lambda s: (
                bool(s.subtasks)
                and s.subtask("slow").result.status == "running"
                and s.subtask("other").result.status == "completed"
            ),
        )
        await engine.client.get_workflow_handle(f"{handle.id}.slow").cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await engine.state(handle)

    assert state.subtask("slow").result.status == SubtaskStatus.CANCELLED
    assert state.subtask("after").result.status == SubtaskStatus.BLOCKED
    assert state.subtask("other").result.status == SubtaskStatus.COMPLETED
    assert state.status == TaskStatus.FAILED and "subtask 'slow' was cancelled" in (
        state.error or ""
    )
