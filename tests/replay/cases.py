"""The representative tasks whose histories are recorded as replay fixtures.

Each case is a scripted scenario plus a driver that starts the task on a running engine and
takes it to its end (completion, failure, cancellation, approval). `record.py` runs them and
saves the histories; `test_replay.py` replays the saved files against the current code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio.client import WorkflowFailureError, WorkflowHandle

from mahsm.contracts.pipeline import Pipeline
from mahsm.contracts.task import (
    ApprovalDecision,
    SubtaskStatus,
    TaskOptions,
    TaskRequest,
    TaskState,
    TaskStatus,
)
from mahsm.workflows.task_workflow import TaskWorkflow
from tests.engine_harness import Engine

Handle = WorkflowHandle[Any, TaskState]


def _plan(match: str, subtasks: list[dict[str, Any]]) -> dict[str, Any]:
    return {"purpose": "plan", "match": match, "respond": {"plan": {"subtasks": subtasks}}}


def _answer(subtask: str, content: str, **extra: Any) -> dict[str, Any]:
    return {
        "purpose": "agent_step",
        "match": r"Your subtask:\s*" + subtask,
        "respond": {"content": content},
        **extra,
    }


def _node(sid: str, description: str, *deps: str) -> dict[str, Any]:
    return {
        "id": sid,
        "description": description,
        "required_capabilities": ["data_analysis"],
        "depends_on": list(deps),
    }


AGGREGATE = {"purpose": "aggregate", "respond": {"content": "FINAL:\n{context}"}}

SIMPLE = {
    "rules": [
        _plan("factorial", [_node("calc", "Compute the factorial of 10 with the calculator")]),
        {
            "purpose": "agent_step",
            "match": "factorial",
            "after_tool": False,
            "respond": {"tool_calls": [{"name": "calculator", "arguments": {"expression": "10!"}}]},
        },
        _answer("Compute the factorial", "10! = {last_tool_result}", after_tool=True),
        AGGREGATE,
    ]
}

DAG_FAILURE = {
    "rules": [
        _plan(
            "branches",
            [
                _node("fetch", "Fetch the inputs"),
                _node("good", "Good branch", "fetch"),
                _node("bad", "Bad branch", "fetch"),
                _node("after_bad", "Needs bad", "bad"),
                _node("join", "Join both branches", "good", "after_bad"),
            ],
        ),
        _answer("Fetch the inputs", "inputs=[1, 2, 3]"),
        _answer("Good branch", "good result from <<{context}>>"),
        {
            "purpose": "agent_step",
            "match": r"Your subtask:\s*Bad branch",
            "respond": {"error": 400},
        },
        _answer("Needs bad", "must never run"),
        _answer("Join", "must never run"),
        AGGREGATE,
    ]
}

CANCELLED = {
    "rules": [
        _plan("slow", [_node("one", "Slow step one"), _node("two", "Slow step two", "one")]),
        _answer("Slow step", "done", latency_ms=30_000),
        AGGREGATE,
    ]
}

APPROVAL = {
    "rules": [
        _plan(
            "approval",
            [_node("draft", "Draft the answer"), _node("review", "Review the draft", "draft")],
        ),
        _answer("Draft the answer", "draft v1"),
        _answer("Review the draft", "reviewed: {context}"),
        AGGREGATE,
    ]
}


async def _simple(engine: Engine) -> Handle:
    handle = await engine.start(TaskRequest(description="Calculate factorial of 10"))
    state = await handle.result()
    assert state.status == TaskStatus.COMPLETED and "3628800" in (state.result or "")
    return handle


async def _dag_failure(engine: Engine) -> Handle:
    handle = await engine.start(TaskRequest(description="Run two branches, one fails"))
    try:
        await handle.result()
    except WorkflowFailureError:
        pass
    state = await engine.state(handle)
    assert state.status == TaskStatus.FAILED
    assert state.subtask("good").result.status == SubtaskStatus.COMPLETED
    assert state.subtask("join").result.status == SubtaskStatus.BLOCKED
    return handle


async def _cancelled(engine: Engine) -> Handle:
    handle = await engine.start(TaskRequest(description="A slow task to cancel"))
    await engine.wait_for(
        handle, lambda s: bool(s.subtasks) and s.subtask("one").result.status == "running"
    )
    await handle.cancel()
    try:
        await handle.result()
    except WorkflowFailureError:
        pass
    state = await engine.state(handle)
    assert state.status == TaskStatus.CANCELLED
    return handle


async def _approval(engine: Engine) -> Handle:
    handle = await engine.start(
        TaskRequest(
            description="An approval-gated task", options=TaskOptions(require_approval=True)
        )
    )
    await engine.wait_for(handle, lambda s: s.status == TaskStatus.AWAITING_APPROVAL)
    await asyncio.sleep(0.2)  # a query-only pause: nothing may depend on it
    outcome = await handle.execute_update(
        TaskWorkflow.approve, ApprovalDecision(approved=True, comment="go")
    )
    assert outcome.status == TaskStatus.RUNNING
    state = await handle.result()
    assert state.status == TaskStatus.COMPLETED and "draft v1" in (state.result or "")
    return handle


@dataclass(frozen=True)
class Case:
    """One recorded task: its scenario, and how to drive it to its end."""

    name: str
    scenario: dict[str, Any]
    drive: Callable[[Engine], Awaitable[Handle]]
    settings: dict[str, Any] = field(default_factory=dict)


PIPELINE = {
    "rules": [{"purpose": "step", "subtask": "tone", "respond": {"content": '{"score": 4}'}}]
}

PIPELINE_RUN = Pipeline.model_validate(
    {
        "name": "replay-pipeline",
        "inputs": {"ticket": "str"},
        "steps": [
            {"name": "draft", "kind": "llm", "prompt": "Draft a reply to: {ticket}"},
            {
                "name": "checks",
                "kind": "parallel",
                "steps": [
                    {
                        "name": "tone",
                        "kind": "llm",
                        "prompt": "Rate the tone of: {draft}",
                        "response_schema": {"type": "object"},
                    },
                    {
                        "name": "total",
                        "kind": "tool",
                        "tool": "calculator",
                        "args": {"expression": "6*7"},
                    },
                ],
            },
            {
                "name": "final",
                "kind": "transform",
                "function": "tests.workflows.pipeline_transforms.shape",
                "args": {"tone": "{checks.tone.score}", "total": "{checks.total}"},
            },
        ],
        "outputs": {"count": "{final.count}"},
    }
)


async def _pipeline(engine: Engine) -> Handle:
    handle = await engine.start(
        TaskRequest(
            description="Run the replay pipeline",
            pipeline=PIPELINE_RUN,
            inputs={"ticket": "late parcel"},
        )
    )
    state = await handle.result()
    assert state.status == TaskStatus.COMPLETED and state.outputs == {"count": 2}, state.error
    return handle


CASES = [
    Case("simple", SIMPLE, _simple),
    Case("dag_failure", DAG_FAILURE, _dag_failure),
    Case("cancelled", CANCELLED, _cancelled),
    Case("approval", APPROVAL, _approval),
    Case("pipeline", PIPELINE, _pipeline),
    # The agent runs in a child workflow, as when a task's history reaches its inline bound.
    Case("handoff", SIMPLE, _simple, settings={"inline_history_events": 0}),
]
# Cases recorded before engine-v2 (histories/v1/).
V1_CASES = ("simple", "dag_failure", "cancelled", "approval")
# Engine v2 recorded while new tasks still carried the `engine-v2` patch marker.
V2_PATCHED_CASES = ("simple", "dag_failure", "cancelled", "approval", "handoff")
# Engine v2 recorded while agents' calls always went to the pool's queue (histories/
# v2-pool-queue/), before a pool served by the tasks queue's workers took them there.
V2_POOL_QUEUE_CASES = tuple(c.name for c in CASES)
