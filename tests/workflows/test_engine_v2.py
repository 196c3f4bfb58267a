"""The inline engine (engine-v2): no aggregation of one subtask, history bounds, one budget,
pools re-resolved when their workers die."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import pytest
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowFailureError

from mahsm.activities.llm.activity import LLMActivities
from mahsm.activities.tools.registry import default_registry
from mahsm.contracts.llm import ChatMessage, LLMPurpose, LLMRequest
from mahsm.contracts.task import (
    MAX_SUBTASKS,
    Budget,
    Capability,
    SubtaskStatus,
    TaskOptions,
    TaskRequest,
    TaskState,
    TaskStatus,
)
from mahsm.pool_liveness import PoolDirectory
from mahsm.queues import tasks_queue
from mahsm.settings import load_settings
from mahsm.task_driver import TaskDriver
from mahsm.workers.main import build_workers
from mahsm.workflows.pool_router import POOL_PICKUP_S
from tests.engine_harness import (
    AGGREGATE,
    agent_activities,
    answer_rule,
    plan_rule,
    running_engine,
)


def _node(
    sid: str, description: str, *deps: str, caps: tuple[str, ...] = ("data_analysis",)
) -> dict[str, Any]:
    return {
        "id": sid,
        "description": description,
        "required_capabilities": list(caps),
        "depends_on": list(deps),
    }


def _llm_activity_ids(events: list[HistoryEvent]) -> list[str]:
    return [
        e.activity_task_scheduled_event_attributes.activity_id
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "llm_complete"
    ]


async def test_single_subtask_task_makes_no_aggregation_call(engine_factory) -> None:
    scenario = {
        "rules": [
            plan_rule("alone", [_node("only", "Answer on its own")]),
            answer_rule("Answer on its own", "the answer is 7"),
            AGGREGATE,
        ]
    }
    async with engine_factory(scenario) as engine:
        handle = await engine.start(TaskRequest(description="A task that is alone in its plan"))
        state = await handle.result()
        history = await handle.fetch_history()

    assert state.status == TaskStatus.COMPLETED
    assert state.result == "the answer is 7"
    assert _llm_activity_ids(history.events) == ["plan-0", "only/llm-0"]
    assert not any(
        e.HasField("start_child_workflow_execution_initiated_event_attributes")
        for e in history.events
    )


def _queues_by_call(activities: list[Any]) -> dict[str, str]:
    """Activity id -> the queue it was scheduled on."""
    return {a.activity_id: a.task_queue.name for a in activities}


_CALCULATE = {"name": "calculator", "arguments": {"expression": "6*7"}}
_ONE_TOOL_AGENT = {
    "rules": [
        plan_rule("colocated", [_node("calc", "Calculate with the tool")]),
        {"purpose": "agent_step", "subtask": "calc", "step": 1, "respond": {"content": "42"}},
        {"purpose": "agent_step", "subtask": "calc", "respond": {"tool_calls": [_CALCULATE]}},
        AGGREGATE,
    ]
}


async def test_a_pool_served_by_the_tasks_workers_runs_its_calls_on_the_tasks_queue(
    engine_factory,
) -> None:
    """One group of workers polls the tasks queue and the pool: the agent's LLM and tool
    calls go to the task's own queue (started eagerly); the subtask still names its pool."""
    async with engine_factory(_ONE_TOOL_AGENT) as engine:
        handle = await engine.start(TaskRequest(description="A colocated calculation"))
        state = await handle.result()
        agent_calls = _queues_by_call(await agent_activities(engine.client, handle.id, "calc"))
        prefix = engine.settings.queue_prefix

    assert state.status == TaskStatus.COMPLETED, state.error
    assert "calc/llm-0" in agent_calls and any("/tool-" in k for k in agent_calls), agent_calls
    assert set(agent_calls.values()) == {tasks_queue(prefix)}, agent_calls
    assert (state.subtask("calc").result.pool or "").startswith(f"{prefix}-pool.")


async def test_a_pool_not_served_by_every_tasks_worker_gets_its_calls_on_its_own_queue(
    temporal_client, db_pool, data_dir
) -> None:
    """A second group polls the tasks queue without serving any pool: the calls stay on the
    pool's queue, where only workers that serve it take them."""
    async with running_engine(
        client=temporal_client, pool=db_pool, data_dir=data_dir, scenario=_ONE_TOOL_AGENT
    ) as engine:
        prefix = engine.settings.queue_prefix
        # Another process, as far as Temporal can tell: one client runs one worker per queue.
        other = await Client.connect(
            temporal_client.service_client.config.target_host,
            namespace=temporal_client.namespace,
            data_converter=temporal_client.data_converter,
        )
        tasks_only = build_workers(
            client=other,
            pool=db_pool,
            settings=engine.settings,
            capabilities=[],
            profiles=[],
        )
        async with AsyncExitStack() as stack:
            for worker in tasks_only:
                await stack.enter_async_context(worker)
            directory = PoolDirectory(temporal_client, cache_s=0)
            for _ in range(100):  # until the server lists both groups on the tasks queue
                if len(await directory.workers(tasks_queue(prefix))) >= 2:
                    break
                await asyncio.sleep(0.1)
            handle = await engine.start(
                TaskRequest(description="A colocated calculation, pool apart")
            )
            state = await handle.result()
            agent_calls = _queues_by_call(await agent_activities(engine.client, handle.id, "calc"))

    assert state.status == TaskStatus.COMPLETED, state.error
    pool = state.subtask("calc").result.pool
    assert pool and pool.startswith(f"{prefix}-pool.")
    assert agent_calls and set(agent_calls.values()) == {pool}, agent_calls


def _largest_task_scenario() -> tuple[dict[str, Any], int]:
    """50 subtasks; one of them ('long') takes all 100 iterations (99 tool calls)."""
    max_iterations = 100
    nodes = [_node("long", "Work long with the calculator")]
    nodes += [_node(f"s{i:02d}", f"Short step {i:02d}") for i in range(MAX_SUBTASKS - 1)]
    calculate = {"name": "calculator", "arguments": {"expression": "6*7"}}
    rules = [
        plan_rule("largest", nodes),
        {
            "purpose": "agent_step",
            "subtask": "long",
            "step": max_iterations - 1,
            "respond": {"content": "long done"},
        },
        {"purpose": "agent_step", "subtask": "long", "respond": {"tool_calls": [calculate]}},
        {"purpose": "agent_step", "respond": {"content": "short done"}},
        {"purpose": "aggregate", "respond": {"content": "all done"}},
    ]
    return {"rules": rules}, max_iterations


# The documented bound (docs/architecture.md, "History bounds"): a task's history stays under
# its inline bound plus this many events per subtask (an iteration in flight at the bound, a
# child's start and end, the subtask's own bookkeeping).
EVENTS_PER_SUBTASK_PAST_BOUND = 15


@pytest.mark.parametrize("inline_history_events", [10_000, 400], ids=["inline", "handed-off"])
async def test_largest_plan_and_longest_agent_stay_under_the_history_bounds(
    engine_factory, inline_history_events: int
) -> None:
    scenario, max_iterations = _largest_task_scenario()
    async with engine_factory(scenario, inline_history_events=inline_history_events) as engine:
        handle = await engine.start(
            TaskRequest(
                description="The largest plan with the longest agent",
                options=TaskOptions(max_iterations=max_iterations),
            )
        )
        state = await handle.result()
        history = await handle.fetch_history()
        size = sum(e.ByteSize() for e in history.events)
        children = [
            e.start_child_workflow_execution_initiated_event_attributes.workflow_id
            for e in history.events
            if e.HasField("start_child_workflow_execution_initiated_event_attributes")
        ]
        child_lengths = [
            len((await engine.client.get_workflow_handle(c).fetch_history()).events)
            for c in children
        ]

    assert state.status == TaskStatus.COMPLETED, state.error
    assert state.subtask("long").result.output == "long done"
    bound = inline_history_events + EVENTS_PER_SUBTASK_PAST_BOUND * MAX_SUBTASKS
    assert len(history.events) <= bound
    assert size < 16 * 1024 * 1024
    if inline_history_events == 10_000:
        assert children == []  # everything ran inline
    else:
        assert f"{handle.id}.long" in children  # the long agent moved to a child workflow
        assert max(child_lengths) < 5_000  # and that child continues-as-new before 5,000


async def test_parallel_agents_share_one_budget(engine_factory) -> None:
    agents = 10
    scenario = {
        "rules": [
            plan_rule("budget", [_node(f"a{i}", f"Parallel agent {i}") for i in range(agents)]),
            {"purpose": "agent_step", "respond": {"content": "done " * 20}},
            AGGREGATE,
        ]
    }
    async with engine_factory(scenario) as engine:
        # Measure the planner (a task held at approval) and one agent call (an unbudgeted task).
        held = await engine.start(
            TaskRequest(
                description="A budget task of ten agents",
                options=TaskOptions(require_approval=True),
            )
        )
        planner = (
            await engine.wait_for(held, lambda s: s.status == TaskStatus.AWAITING_APPROVAL)
        ).usage.total_tokens
        await held.cancel()
        probe = await engine.start(TaskRequest(description="A budget task of ten agents"))
        per_call = (await probe.result()).subtask("a0").result.usage.total_tokens
        budget = planner + 3 * per_call + per_call // 2  # room for 3.5 agent calls
        handle = await engine.start(
            TaskRequest(
                description="A budget task of ten agents",
                options=TaskOptions(budget=Budget(max_total_tokens=budget)),
            )
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await engine.state(handle)

    assert state.status == TaskStatus.FAILED and "budget" in (state.error or "")
    assert state.usage.total_tokens <= budget + per_call  # overshoot: at most one call
    completed = [s for s in state.subtasks if s.result.status == SubtaskStatus.COMPLETED]
    assert 3 <= len(completed) < agents


async def test_a_pool_whose_workers_died_shows_waiting_for_and_is_re_resolved(
    temporal_client, db_pool, data_dir
) -> None:
    """Pool A is chosen, then its only worker stops: the subtask shows why it waits, and
    moves to pool B once a worker serves B."""
    scenario = {
        "rules": [
            plan_rule(
                "dead pool",
                [
                    _node("first", "First on pool A"),
                    _node("slow", "Slow elsewhere", caps=("web_scraping",)),
                    _node("second", "Second after both", "first", "slow"),
                ],
            ),
            answer_rule("First on pool A", "first done"),
            answer_rule("Slow elsewhere", "slow done", latency_ms=3_000),
            answer_rule("Second after both", "second done"),
            AGGREGATE,
        ]
    }

    async def start_pool(stack: AsyncExitStack, settings: Any, caps: list[Capability]) -> None:
        for worker in build_workers(
            client=temporal_client,
            pool=db_pool,
            settings=settings,
            capabilities=caps,
            serve_tasks=False,
        ):
            await stack.enter_async_context(worker)

    async with (
        running_engine(
            client=temporal_client,
            pool=db_pool,
            data_dir=data_dir,
            scenario=scenario,
            capabilities=[Capability.WEB_SCRAPING],
        ) as engine,
        AsyncExitStack() as pool_b,
    ):
        async with AsyncExitStack() as pool_a:
            await start_pool(pool_a, engine.settings, [Capability.DATA_ANALYSIS])
            handle = await engine.start(TaskRequest(description="Run on a dead pool please"))
            await engine.wait_for(
                handle,
                lambda s: bool(s.subtasks) and s.subtask("first").result.status == "completed",
            )
        # Pool A's only worker stopped while 'slow' runs; 'second' will be routed to A.
        # First "no worker took this subtask's work ... looking for a live pool", then, the
        # lookup finding no other pool, what it waits for.
        waiting = await engine.wait_for(
            handle,
            lambda s: "waiting for a worker of" in (s.subtask("second").result.waiting_for or ""),
            timeout_s=POOL_PICKUP_S + 30,
        )
        await start_pool(
            pool_b, engine.settings, [Capability.DATA_ANALYSIS, Capability.WEB_SCRAPING]
        )
        state = await asyncio.wait_for(handle.result(), timeout=POOL_PICKUP_S + 60)
        events = await engine.events(handle.id)

    second = state.subtask("second").result
    assert "waiting for a worker of" in (waiting.subtask("second").result.waiting_for or "")
    assert state.status == TaskStatus.COMPLETED
    assert second.output == "second done" and second.waiting_for is None
    assert (state.subtask("first").result.pool or "").endswith(".data_analysis")
    assert (second.pool or "").endswith(".data_analysis+web_scraping")
    moves = [e for e in events if e["kind"] == "note" and e["subtask_id"] == "second"]
    assert any("moved from" in (e["data"] or {}).get("message", "") for e in moves)


async def test_a_large_agent_answer_travels_by_claim_check_to_the_result(engine_factory) -> None:
    answer = "x" * (300 * 1024)  # over the claim-check threshold: the activity returns a ref
    scenario = {
        "rules": [
            plan_rule("large", [_node("big", "Answer at length")]),
            answer_rule("Answer at length", answer),
        ]
    }
    async with engine_factory(scenario) as engine:
        handle = await engine.start(TaskRequest(description="A large answer for the result"))
        state = await handle.result()
        big = state.subtask("big").result
        stored = await engine.pool.fetchval(
            "SELECT octet_length(content) FROM blobs WHERE id = $1",
            big.output_ref.blob_id if big.output_ref else "",
        )

    assert state.status == TaskStatus.COMPLETED
    assert big.output is None and big.output_ref is not None
    assert big.output_ref.size_bytes == len(answer)
    assert state.result is None and state.result_ref == big.output_ref
    assert stored == len(answer)


async def test_a_call_being_retried_shows_in_waiting_for_and_its_end_names_model_and_fix(
    engine_factory,
) -> None:
    scenario = {
        "rules": [
            plan_rule("retried", [_node("flaky", "Call a failing provider")]),
            {"purpose": "agent_step", "respond": {"error": 503}},
        ]
    }
    async with engine_factory(scenario, llm_retry_s=12) as engine:
        driver = TaskDriver(engine.client)
        request = TaskRequest(description="A retried task whose provider keeps failing")
        handle = await engine.start(request)
        seen: TaskState | None = None
        for _ in range(100):
            state = await driver.state(handle.id)
            assert state is not None
            if state.subtasks and state.subtask("flaky").result.waiting_for:
                seen = state
                break
            await asyncio.sleep(0.2)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        final = await engine.state(handle)

    assert seen is not None, "the retried call never showed in waiting_for"
    note = seen.subtask("flaky").result.waiting_for or ""
    assert "flaky/llm-0" in note and "attempt" in note and "503" in note
    error = final.subtask("flaky").result.error or ""
    assert "scripted/test" in error and "12s" in error and "MAHSM_LLM_RETRY_S" in error


def shout(text: str) -> str:
    """Repeat the text in capitals."""
    return text.upper() + "!"


async def test_a_custom_tool_of_the_worker_is_offered_and_run(
    temporal_client, db_pool, data_dir
) -> None:
    """One catalogue per worker: the tool the worker runs is the tool its model is offered."""
    catalogue = default_registry().copy()
    catalogue.register(shout, capabilities=None)
    offered = LLMActivities(settings=load_settings(_env_file=None), blobs=None, tools=catalogue)
    request = LLMRequest(
        model="scripted/test",
        purpose=LLMPurpose.AGENT_STEP,
        messages=[ChatMessage(role="user", content="hi")],
        tool_capabilities=[Capability.DATA_ANALYSIS],
    )
    assert "shout" in {t.name for t in offered._offer_tools(request).tools}

    scenario = {
        "rules": [
            plan_rule("custom", [_node("loud", "Say it loud")]),
            {
                "purpose": "agent_step",
                "after_tool": False,
                "respond": {"tool_calls": [{"name": "shout", "arguments": {"text": "hello"}}]},
            },
            {
                "purpose": "agent_step",
                "after_tool": True,
                "respond": {"content": "{last_tool_result}"},
            },
        ]
    }
    async with running_engine(
        client=temporal_client, pool=db_pool, data_dir=data_dir, scenario=scenario, tools=catalogue
    ) as engine:
        handle = await engine.start(TaskRequest(description="A custom tool, said loud"))
        state = await handle.result()

    assert state.status == TaskStatus.COMPLETED
    assert "HELLO!" in (state.subtask("loud").result.output or "")
