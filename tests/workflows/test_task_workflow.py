"""TaskWorkflow end to end: real Temporal dev server, real Postgres, scripted LLM."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import WorkflowFailureError

from mahsm.contracts.task import (
    Capability,
    SubtaskStatus,
    TaskOptions,
    TaskRequest,
    TaskStatus,
)
from tests.engine_harness import AGGREGATE, answer_rule, plan_rule

FACTORIAL = {
    "rules": [
        plan_rule(
            "factorial",
            [
                {
                    "id": "calc",
                    "description": "Compute the factorial of 10 with the calculator",
                    "required_capabilities": ["data_analysis"],
                }
            ],
        ),
        {
            "purpose": "agent_step",
            "match": "factorial",
            "after_tool": False,
            "respond": {"tool_calls": [{"name": "calculator", "arguments": {"expression": "10!"}}]},
        },
        answer_rule("Compute the factorial", "10! = {last_tool_result}", after_tool=True),
        AGGREGATE,
    ]
}


async def test_factorial_task_uses_the_calculator_and_records_statuses(engine_factory) -> None:
    async with engine_factory(FACTORIAL) as engine:
        handle = await engine.start(TaskRequest(description="Calculate factorial of 10"))
        state = await handle.result()

    assert state.status == TaskStatus.COMPLETED
    assert "3628800" in (state.result or "")
    calc = state.subtask("calc")
    assert calc.result.status == SubtaskStatus.COMPLETED
    assert calc.result.output == "10! = 3628800"
    assert calc.result.agent and calc.result.started_at and calc.result.finished_at
    assert await engine.subtask_statuses(handle.id, "calc") == ["pending", "running", "completed"]
    row = await engine.task_row(handle.id)
    assert row is not None and row["status"] == "completed" and "3628800" in row["result"]
    tool_messages = [e for e in await engine.events(handle.id) if e["kind"] == "task_status"]
    assert [e["status"] for e in tool_messages] == ["pending", "planning", "running", "completed"]


DAG = {
    "rules": [
        plan_rule(
            "quarterly",
            [
                {
                    "id": "fetch",
                    "description": "Fetch the sales figures",
                    "required_capabilities": ["api_integration"],
                },
                {
                    "id": "analyze",
                    "description": "Analyze the figures",
                    "depends_on": ["fetch"],
                    "required_capabilities": ["data_analysis"],
                },
                {
                    "id": "report",
                    "description": "Write the report",
                    "depends_on": ["fetch", "analyze"],
                    "required_capabilities": ["file_processing"],
                },
            ],
        ),
        answer_rule("Fetch the sales", "figures=[42, 58]"),
        answer_rule("Analyze the figures", "analysis(sum=100) of <<{context}>>"),
        answer_rule("Write the report", "report built on <<{context}>>"),
        AGGREGATE,
    ]
}


async def test_dependencies_order_starts_and_feed_outputs_forward(engine_factory) -> None:
    async with engine_factory(DAG) as engine:
        handle = await engine.start(TaskRequest(description="Build the quarterly sales report"))
        state = await handle.result()

    assert state.status == TaskStatus.COMPLETED
    fetch, analyze, report = (state.subtask(s).result for s in ("fetch", "analyze", "report"))
    assert fetch.finished_at <= analyze.started_at
    assert analyze.finished_at <= report.started_at
    assert "figures=[42, 58]" in (analyze.output or "")
    assert "analysis(sum=100)" in (report.output or "") and "figures=[42, 58]" in report.output
    for output in (fetch.output, analyze.output, report.output):
        assert output and output.splitlines()[0] in (state.result or "")


async def test_a_subtask_starts_when_its_own_dependencies_finish(engine_factory) -> None:
    """No barrier between levels: `quick_next` starts while the slow root still runs."""
    scenario = {
        "rules": [
            plan_rule(
                "levels",
                [
                    {
                        "id": "slow",
                        "description": "Slow root",
                        "required_capabilities": ["data_analysis"],
                    },
                    {
                        "id": "quick",
                        "description": "Quick root",
                        "required_capabilities": ["data_analysis"],
                    },
                    {
                        "id": "quick_next",
                        "description": "After quick",
                        "depends_on": ["quick"],
                        "required_capabilities": ["data_analysis"],
                    },
                ],
            ),
            answer_rule("Slow root", "slow done", latency_ms=4000),
            answer_rule("Quick root", "quick done"),
            answer_rule("After quick", "next done"),
            AGGREGATE,
        ]
    }
    async with engine_factory(scenario) as engine:
        handle = await engine.start(TaskRequest(description="Run the levels test task"))
        state = await handle.result()

    slow, quick_next = state.subtask("slow").result, state.subtask("quick_next").result
    assert quick_next.finished_at < slow.finished_at


async def test_failed_subtask_blocks_its_dependents_and_fails_the_task(engine_factory) -> None:
    scenario = {
        "rules": [
            plan_rule(
                "branches",
                [
                    {
                        "id": "good",
                        "description": "Good branch",
                        "required_capabilities": ["data_analysis"],
                    },
                    {
                        "id": "bad",
                        "description": "Bad branch",
                        "required_capabilities": ["data_analysis"],
                    },
                    {
                        "id": "after_bad",
                        "description": "Needs bad",
                        "depends_on": ["bad"],
                        "required_capabilities": ["data_analysis"],
                    },
                ],
            ),
            answer_rule("Good branch", "good result"),
            {
                "purpose": "agent_step",
                "match": r"Your subtask:\s*Bad branch",
                "respond": {"error": 400},
            },
            answer_rule("Needs bad", "must never run"),
            AGGREGATE,
        ]
    }
    async with engine_factory(scenario) as engine:
        handle = await engine.start(TaskRequest(description="Run two branches, one fails"))
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await engine.state(handle)

    assert state.status == TaskStatus.FAILED
    assert "bad" in (state.error or "")
    bad, after_bad = state.subtask("bad").result, state.subtask("after_bad").result
    assert bad.status == SubtaskStatus.FAILED and bad.error
    assert after_bad.status == SubtaskStatus.BLOCKED and after_bad.started_at is None
    assert state.subtask("good").result.status == SubtaskStatus.COMPLETED
    assert "running" not in await engine.subtask_statuses(handle.id, "after_bad")
    rows = await engine.subtask_rows(handle.id)
    assert rows["after_bad"]["status"] == "blocked" and rows["bad"]["status"] == "failed"


SLOW = {
    "rules": [
        plan_rule(
            "slow",
            [
                {
                    "id": "one",
                    "description": "Slow step one",
                    "required_capabilities": ["data_analysis"],
                },
                {
                    "id": "two",
                    "description": "Slow step two",
                    "depends_on": ["one"],
                    "required_capabilities": ["data_analysis"],
                },
            ],
        ),
        answer_rule("Slow step", "done", latency_ms=20000),
        AGGREGATE,
    ]
}


@pytest.mark.parametrize("inline_history_events", [10_000, 0], ids=["inline", "child"])
async def test_cancellation_stops_running_agents_and_persists_cancelled_state(
    engine_factory, inline_history_events: int
) -> None:
    async with engine_factory(SLOW, inline_history_events=inline_history_events) as engine:
        handle = await engine.start(TaskRequest(description="A slow task to cancel"))
        await engine.wait_for(
            handle, lambda s: bool(s.subtasks) and s.subtask("one").result.status == "running"
        )
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await engine.state(handle)
        history = await handle.fetch_history()
        child = None
        if inline_history_events == 0:
            child = await engine.client.get_workflow_handle(f"{handle.id}.one").describe()

    assert state.status == TaskStatus.CANCELLED
    assert {s.result.status for s in state.subtasks} == {SubtaskStatus.CANCELLED}
    if child is not None:  # the agent ran in a child workflow: the child was cancelled
        assert child.status is not None and child.status.name == "CANCELED"
    else:  # the agent ran inline: its in-flight LLM call was cancelled
        scheduled = {
            e.event_id: e.activity_task_scheduled_event_attributes.activity_id
            for e in history.events
            if e.HasField("activity_task_scheduled_event_attributes")
        }
        cancelled = [
            scheduled[e.activity_task_cancel_requested_event_attributes.scheduled_event_id]
            for e in history.events
            if e.HasField("activity_task_cancel_requested_event_attributes")
        ]
        assert cancelled == ["one/llm-0"]
    row = await engine.task_row(handle.id)
    assert row is not None and row["status"] == "cancelled"
    rows = await engine.subtask_rows(handle.id)
    assert {r["status"] for r in rows.values()} == {"cancelled"}


async def test_task_timeout_ends_it_timed_out(engine_factory) -> None:
    async with engine_factory(SLOW) as engine:
        handle = await engine.start(
            TaskRequest(
                description="A slow task that times out", options=TaskOptions(task_timeout_s=2)
            )
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await engine.state(handle)

    assert state.status == TaskStatus.TIMED_OUT and "timed out" in (state.error or "")
    assert state.subtask("one").result.status == SubtaskStatus.CANCELLED
    row = await engine.task_row(handle.id)
    assert row is not None and row["status"] == "timed_out"


async def test_max_iterations_fails_the_subtask_clearly(engine_factory) -> None:
    scenario = {
        "rules": [
            plan_rule(
                "forever",
                [
                    {
                        "id": "loop",
                        "description": "Loop forever",
                        "required_capabilities": ["data_analysis"],
                    }
                ],
            ),
            {
                "purpose": "agent_step",
                "respond": {
                    "tool_calls": [{"name": "calculator", "arguments": {"expression": "1+1"}}]
                },
            },
            AGGREGATE,
        ]
    }
    async with engine_factory(scenario) as engine:
        handle = await engine.start(
            TaskRequest(description="Loop forever on tools", options=TaskOptions(max_iterations=2))
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await engine.state(handle)

    loop = state.subtask("loop").result
    assert loop.status == SubtaskStatus.FAILED
    assert "max_iterations (2)" in (loop.error or "")
    assert loop.usage.input_tokens > 0  # the failed agent's usage still counts


async def test_unserved_capability_waits_visibly_then_fails(engine_factory) -> None:
    scenario = {
        "rules": [
            plan_rule(
                "scrape",
                [
                    {
                        "id": "web",
                        "description": "Scrape the site",
                        "required_capabilities": ["web_scraping"],
                    }
                ],
            ),
            AGGREGATE,
        ]
    }
    async with engine_factory(scenario, capabilities=[Capability.DATA_ANALYSIS]) as engine:
        handle = await engine.start(
            TaskRequest(
                description="Scrape the website please", options=TaskOptions(capability_wait_s=4)
            )
        )
        waiting = await engine.wait_for(
            handle, lambda s: bool(s.subtasks) and s.subtask("web").result.waiting_for is not None
        )
        stored_wait = None
        for _ in range(50):
            rows = await engine.subtask_rows(handle.id)
            if "web" in rows and (stored_wait := rows["web"]["waiting_for"]):
                break
            await asyncio.sleep(0.05)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await engine.state(handle)

    assert "web_scraping" in (waiting.subtask("web").result.waiting_for or "")
    assert stored_wait is not None and "no worker serves" in stored_wait
    web = state.subtask("web").result
    assert web.status == SubtaskStatus.FAILED
    assert "no worker serves capabilities [web_scraping]" in (web.error or "")
    assert web.started_at is None


async def test_subtask_routes_to_a_pool_that_has_all_its_capabilities(engine_factory) -> None:
    scenario = {
        "rules": [
            plan_rule(
                "route",
                [
                    {
                        "id": "both",
                        "description": "Needs two capabilities",
                        "required_capabilities": ["web_scraping", "data_analysis"],
                    }
                ],
            ),
            AGGREGATE,
        ]
    }
    async with engine_factory(
        scenario,
        capabilities=[Capability.DATA_ANALYSIS],
        extra_pools=[
            [Capability.WEB_SCRAPING, Capability.DATA_ANALYSIS, Capability.API_INTEGRATION]
        ],
    ) as engine:
        handle = await engine.start(TaskRequest(description="Route this to the right pool"))
        state = await handle.result()

    pool = state.subtask("both").result.pool
    assert pool is not None and pool.endswith("-pool.api_integration+data_analysis+web_scraping")
