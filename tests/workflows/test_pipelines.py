"""Pipelines on the engine: every step kind, templates, parallel groups, critical or not."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowFailureError

from mahsm.contracts.pipeline import Pipeline, StepKind
from mahsm.contracts.task import (
    ApprovalDecision,
    Budget,
    SubtaskStatus,
    TaskOptions,
    TaskRequest,
    TaskStatus,
)
from mahsm.workflows.task_workflow import TaskWorkflow
from tests.engine_harness import answer_rule

TRANSFORMS = "tests.workflows.pipeline_transforms"


def _pipeline(steps: list[dict[str, Any]], **extra: Any) -> Pipeline:
    return Pipeline.model_validate({"name": "test-run", "steps": steps, **extra})


def _run(pipeline: Pipeline, **inputs: Any) -> TaskRequest:
    return TaskRequest(
        description=f"Run pipeline {pipeline.name}", pipeline=pipeline, inputs=inputs
    )


def _step_rule(step: str, content: str, **extra: Any) -> dict[str, Any]:
    return {"purpose": "step", "subtask": step, "respond": {"content": content}, **extra}


def _scheduled(events: list[HistoryEvent]) -> dict[str, HistoryEvent]:
    return {
        e.activity_task_scheduled_event_attributes.activity_id: e
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
    }


async def test_every_step_kind_runs_with_templates_filled(engine_factory) -> None:
    pipeline = _pipeline(
        [
            {"name": "draft", "kind": "llm", "prompt": "Draft a reply to: {ticket}"},
            {
                "name": "checks",
                "kind": "parallel",
                "steps": [
                    {
                        "name": "tone",
                        "kind": "llm",
                        "prompt": "Rate the tone of: {draft}",
                        "response_schema": {
                            "type": "object",
                            "properties": {"score": {"type": "integer"}},
                        },
                    },
                    {
                        "name": "total",
                        "kind": "tool",
                        "tool": "calculator",
                        "args": {"expression": "{factor}*7"},
                    },
                ],
            },
            {"name": "agent", "kind": "agent", "description": "Summarise tone {checks.tone.score}"},
            {"name": "final", "kind": "transform", "function": f"{TRANSFORMS}.shape"},
        ],
        inputs={"ticket": "str", "factor": "int"},
        outputs={
            "reply": "{draft}",
            "score": "{checks.tone.score}",
            "total": "{checks.total}",
            "shape": "{final.count}",
            "summary": "Agent says: {agent}",
        },
    )
    scenario = {
        "rules": [
            _step_rule("draft", "Dear customer, about {user}"),
            _step_rule("tone", '{"score": 4}'),
            answer_rule("Summarise tone 4", "tone is fine"),
        ]
    }
    async with engine_factory(scenario) as engine:
        handle = await engine.start(_run(pipeline, ticket="my invoice is wrong", factor=6))
        state = await handle.result()
        history = await handle.fetch_history()

    assert state.status == TaskStatus.COMPLETED, state.error
    assert state.pipeline == "test-run"
    outputs = state.outputs or {}
    assert outputs["reply"] == "Dear customer, about Draft a reply to: my invoice is wrong"
    assert outputs["score"] == 4
    assert outputs["total"] == "42"
    assert outputs["summary"] == "Agent says: tone is fine"
    # The transform got every input and every earlier step's value by name.
    final = state.subtask("final").result.value
    assert set(final["seen"]) == {"ticket", "factor", "draft", "tone", "total", "checks", "agent"}
    assert final["seen"]["checks"] == {"tone": {"score": 4}, "total": "42"}
    assert outputs["shape"] == 7
    kinds = {item.subtask.id: item.subtask.kind for item in state.subtasks}
    assert kinds == {
        "draft": StepKind.LLM,
        "tone": StepKind.LLM,
        "total": StepKind.TOOL,
        "checks": StepKind.PARALLEL,
        "agent": StepKind.AGENT,
        "final": StepKind.TRANSFORM,
    }
    assert all(i.result.status == SubtaskStatus.COMPLETED for i in state.subtasks)
    assert state.subtask("tone").result.value == {"score": 4}
    assert state.subtask("draft").result.model == "scripted/test"
    ids = set(_scheduled(history.events))
    assert {"draft/llm", "tone/llm", "total/tool", "agent/llm-0", "final/transform"} <= ids
    assert "aggregate" not in ids and not any(i.startswith("plan-") for i in ids)
    assert state.result is not None and '"score": 4' in state.result


async def test_parallel_members_overlap(engine_factory) -> None:
    pipeline = _pipeline(
        [
            {
                "name": "both",
                "kind": "parallel",
                "steps": [
                    {"name": "left", "kind": "llm", "prompt": "left side"},
                    {"name": "right", "kind": "llm", "prompt": "right side"},
                ],
            }
        ]
    )
    async with engine_factory({"latency_ms": 600, "rules": []}) as engine:
        handle = await engine.start(_run(pipeline))
        state = await handle.result()
        history = await handle.fetch_history()

    assert state.status == TaskStatus.COMPLETED
    assert state.outputs == {"both": {"left": "left side", "right": "right side"}}
    scheduled = _scheduled(history.events)
    by_id = {e.event_id: e for e in history.events}
    completed = {
        by_id[
            e.activity_task_completed_event_attributes.scheduled_event_id
        ].activity_task_scheduled_event_attributes.activity_id: e
        for e in history.events
        if e.HasField("activity_task_completed_event_attributes")
    }
    first_done = min(
        completed["left/llm"].event_time.ToDatetime(),
        completed["right/llm"].event_time.ToDatetime(),
    )
    for member in ("left/llm", "right/llm"):
        assert scheduled[member].event_time.ToDatetime() < first_done


async def test_non_critical_failure_goes_on_and_dependents_get_null(engine_factory) -> None:
    pipeline = _pipeline(
        [
            {"name": "lookup", "kind": "llm", "prompt": "look it up", "is_critical": False},
            {
                "name": "report",
                "kind": "llm",
                "prompt": "Report: {lookup} because {lookup.error}",
            },
        ]
    )
    scenario = {"rules": [{"purpose": "step", "subtask": "lookup", "respond": {"error": 400}}]}
    async with engine_factory(scenario) as engine:
        handle = await engine.start(_run(pipeline))
        state = await handle.result()

    assert state.status == TaskStatus.COMPLETED, state.error
    lookup = state.subtask("lookup").result
    assert lookup.status == SubtaskStatus.FAILED and lookup.error
    report = state.subtask("report").result.output or ""
    assert report.startswith("Report: null because ")
    assert "400" in report


async def test_critical_failure_blocks_dependents_and_fails_the_run(engine_factory) -> None:
    pipeline = _pipeline(
        [
            {"name": "lookup", "kind": "transform", "function": f"{TRANSFORMS}.fails"},
            {"name": "report", "kind": "llm", "prompt": "Report: {lookup}"},
        ]
    )
    async with engine_factory({"rules": []}) as engine:
        handle = await engine.start(_run(pipeline))
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await engine.state(handle)

    assert state.status == TaskStatus.FAILED
    assert "the ledger does not balance" in (state.error or "")
    assert state.subtask("report").result.status == SubtaskStatus.BLOCKED


async def test_transform_returning_non_json_fails_the_step_clearly(engine_factory) -> None:
    pipeline = _pipeline(
        [{"name": "odd", "kind": "transform", "function": f"{TRANSFORMS}.not_json"}]
    )
    async with engine_factory({"rules": []}) as engine:
        handle = await engine.start(_run(pipeline))
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await engine.state(handle)
    error = state.subtask("odd").result.error or ""
    assert "returned a set that is not JSON" in error


async def test_invalid_pipeline_started_directly_fails_naming_step_and_field(
    engine_factory,
) -> None:
    pipeline = _pipeline(
        [{"name": "draft", "kind": "llm", "prompt": "Draft {missing}"}], inputs={"ticket": "str"}
    )
    async with engine_factory({"rules": []}) as engine:
        handle = await engine.start(_run(pipeline, ticket="x"))
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await engine.state(handle)
    assert state.status == TaskStatus.FAILED
    assert "steps.draft.prompt" in (state.error or "") and "{missing}" in (state.error or "")
    assert state.subtasks == []


async def test_structured_answer_that_is_not_json_fails_the_step(engine_factory) -> None:
    pipeline = _pipeline(
        [
            {
                "name": "classify",
                "kind": "llm",
                "prompt": "Classify",
                "response_schema": {"type": "object"},
            }
        ]
    )
    scenario = {"rules": [_step_rule("classify", "billing, I think")]}
    async with engine_factory(scenario) as engine:
        handle = await engine.start(_run(pipeline))
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await engine.state(handle)
    assert "not the JSON its response_schema asks for" in (
        state.subtask("classify").result.error or ""
    )


async def test_step_results_reach_postgres(engine_factory) -> None:
    pipeline = _pipeline(
        [
            {"name": "a", "kind": "llm", "prompt": "alpha"},
            {
                "name": "b",
                "kind": "transform",
                "function": f"{TRANSFORMS}.shape",
                "args": {"x": "{a}"},
            },
        ],
        outputs={"b": "{b.seen.x}"},
    )
    async with engine_factory({"rules": []}) as engine:
        handle = await engine.start(_run(pipeline))
        state = await handle.result()
        row = await engine.task_row(handle.id)
        subtasks = await engine.subtask_rows(handle.id)

    assert state.outputs == {"b": "alpha"}
    assert row is not None and row["status"] == "completed"
    assert subtasks["b"]["status"] == "completed"
    assert '"count": 1' in subtasks["b"]["output"]
    assert subtasks["b"]["kind"] == "transform"
    assert subtasks["b"]["value"] == {"seen": {"x": "alpha"}, "count": 1}
    assert subtasks["a"]["model"] == "scripted/test"
    assert row["pipeline"] == "test-run" and row["outputs"] == {"b": "alpha"}


async def test_step_timeout_fails_the_step_in_time(engine_factory) -> None:
    pipeline = _pipeline(
        [
            {
                "name": "wait",
                "kind": "transform",
                "function": f"{TRANSFORMS}.slow",
                "args": {"seconds": 20},
                "timeout_s": 1.5,
            }
        ]
    )
    async with engine_factory({"rules": []}) as engine:
        handle = await engine.start(_run(pipeline))
        started = asyncio.get_running_loop().time()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        took = asyncio.get_running_loop().time() - started
        state = await engine.state(handle)
    assert state.subtask("wait").result.error == "step timed out after 1.5s"
    assert took < 15


async def test_pipeline_waits_for_approval_then_runs(engine_factory) -> None:
    pipeline = _pipeline([{"name": "only", "kind": "llm", "prompt": "approved work"}])
    request = _run(pipeline).model_copy(update={"options": TaskOptions(require_approval=True)})
    async with engine_factory({"rules": []}) as engine:
        handle = await engine.start(request)
        waiting = await engine.wait_for(handle, lambda s: s.status == TaskStatus.AWAITING_APPROVAL)
        assert [i.subtask.id for i in waiting.subtasks] == ["only"]
        assert waiting.subtasks[0].result.status == SubtaskStatus.PENDING
        outcome = await handle.execute_update(TaskWorkflow.approve, ApprovalDecision(approved=True))
        state = await handle.result()
    assert outcome.status == TaskStatus.RUNNING
    assert state.outputs == {"only": "approved work"}


async def test_budget_stops_a_pipeline_before_its_next_step(engine_factory) -> None:
    pipeline = _pipeline(
        [
            {"name": "first", "kind": "llm", "prompt": "word " * 50},
            {"name": "second", "kind": "llm", "prompt": "{first} again"},
        ]
    )
    request = _run(pipeline).model_copy(
        update={"options": TaskOptions(budget=Budget(max_total_tokens=20))}
    )
    async with engine_factory({"rules": []}) as engine:
        handle = await engine.start(request)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await engine.state(handle)
    assert state.subtask("first").result.status == SubtaskStatus.COMPLETED
    assert state.subtask("second").result.status in (
        SubtaskStatus.CANCELLED,
        SubtaskStatus.FAILED,
    )
    assert "budget" in (state.error or "")


async def test_cancelling_a_pipeline_cancels_its_running_step(engine_factory) -> None:
    pipeline = _pipeline(
        [
            {
                "name": "long",
                "kind": "transform",
                "function": f"{TRANSFORMS}.slow",
                "args": {"seconds": 30},
            }
        ]
    )
    async with engine_factory({"rules": []}) as engine:
        handle = await engine.start(_run(pipeline))
        await engine.wait_for(
            handle, lambda s: bool(s.subtasks) and s.subtasks[0].result.status == "running"
        )
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await engine.state(handle)
    assert state.status == TaskStatus.CANCELLED
    assert state.subtask("long").result.status == SubtaskStatus.CANCELLED
