"""Replanning on failure, end to end: real Temporal dev server, real Postgres, scripted LLM.

The plan: `fetch` and `summary` succeed, `analyze` fails for good (HTTP 400), so `report`
(after `fetch` and `analyze`) is blocked. A revision replaces them with `analyze_alt` and
`report_alt`; the call log shows that finished subtasks never ran again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowFailureError

from mahsm.activities.llm.scenario import bundled_dir
from mahsm.contracts.task import (
    ApprovalDecision,
    Budget,
    ReplanOptions,
    SubtaskStatus,
    TaskOptions,
    TaskRequest,
    TaskStatus,
)
from mahsm.workflows.task_workflow import TaskWorkflow
from tests.engine_harness import AGGREGATE, answer_rule, plan_rule

DESCRIPTION = "Build the yearly sales report"
REVISE = r"Revise the plan"  # in the replanner's system prompt only


def subtask(sid: str, description: str, capability: str, *after: str) -> dict[str, Any]:
    return {
        "id": sid,
        "description": description,
        "required_capabilities": [capability],
        "depends_on": list(after),
    }


FIRST_PLAN = plan_rule(
    "yearly",
    [
        subtask("fetch", "Fetch the figures", "api_integration"),
        subtask("summary", "Summarize the year", "data_analysis"),
        subtask("analyze", "Analyze the figures with the broken tool", "data_analysis", "fetch"),
        subtask("report", "Write the report", "file_processing", "fetch", "analyze"),
    ],
)

REVISION = {
    "subtasks": [
        {
            "id": "analyze_alt",
            "description": "Analyze the figures by hand",
            "depends_on": ["fetch"],
            "required_capabilities": ["data_analysis"],
        },
        {
            "id": "report_alt",
            "description": "Write the report from the hand analysis",
            "depends_on": ["fetch", "analyze_alt"],
            "required_capabilities": ["file_processing"],
        },
    ]
}


def replan_rule(plan: dict[str, Any], match: str = REVISE, **extra: Any) -> dict[str, Any]:
    """The planner's answer to a revision request matching `match`."""
    return {"purpose": "plan", "match": match, "respond": {"plan": plan}, **extra}


def scenario(call_log: Path, *revisions: dict[str, Any]) -> dict[str, Any]:
    return {
        "call_log": str(call_log),
        "rules": [
            *revisions,  # first: the task's description is in the revision request too
            FIRST_PLAN,
            answer_rule("Fetch the figures", "figures=[42, 58]"),
            answer_rule("Summarize the year", "a good year"),
            {
                "purpose": "agent_step",
                "match": r"Your subtask:\s*Analyze the figures with the broken",
                "respond": {"error": 400},
            },
            answer_rule("Analyze the figures by hand", "sum=100"),
            answer_rule("Write the report from", "report on <<{context}>>"),
            AGGREGATE,
        ],
    }


def calls(call_log: Path) -> list[dict[str, Any]]:
    if not call_log.exists():
        return []
    return [json.loads(line) for line in call_log.read_text().splitlines()]


def agent_calls_by_subtask(call_log: Path) -> dict[str, int]:
    found: dict[str, int] = {}
    for entry in calls(call_log):
        if entry["event"] == "start" and entry["purpose"] == "agent_step":
            found[entry["subtask_id"]] = found.get(entry["subtask_id"], 0) + 1
    return found


def replan_activity_ids(call_log: Path) -> list[str]:
    return [
        e["activity_id"]
        for e in calls(call_log)
        if e["event"] == "done" and e["activity_id"].startswith("replan-")
    ]


def request(**options: Any) -> TaskRequest:
    return TaskRequest(description=DESCRIPTION, options=TaskOptions(**options))


async def test_a_failed_subtask_is_replanned_and_finished_siblings_never_rerun(
    engine_factory, tmp_path: Path
) -> None:
    log = tmp_path / "calls.jsonl"
    async with engine_factory(scenario(log, replan_rule(REVISION))) as engine:
        handle = await engine.start(request(replan=ReplanOptions(max_replans=1)))
        state = await handle.result()
        events = await engine.events(handle.id)
        row = await engine.task_row(handle.id)
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        summaries = [
            event.user_metadata.summary.data.decode()
            async for event in handle.fetch_history_events()
            if event.HasField("activity_task_scheduled_event_attributes")
        ]

    assert state.status == TaskStatus.COMPLETED, state.error
    # Finished subtasks ran once: one LLM call each, before and after the revision.
    assert agent_calls_by_subtask(log) == {
        "fetch": 1,
        "summary": 1,
        "analyze": 1,
        "analyze_alt": 1,
        "report_alt": 1,
    }
    assert [s.id for s in state.plan.subtasks] == ["fetch", "summary", "analyze_alt", "report_alt"]
    statuses = {i.subtask.id: i.result.status for i in state.subtasks}
    assert statuses == {
        "fetch": SubtaskStatus.COMPLETED,
        "summary": SubtaskStatus.COMPLETED,
        "analyze": SubtaskStatus.FAILED,  # kept outside the plan: what was tried
        "report": SubtaskStatus.BLOCKED,
        "analyze_alt": SubtaskStatus.COMPLETED,
        "report_alt": SubtaskStatus.COMPLETED,
    }
    assert "figures=[42, 58]" in (state.subtask("report_alt").result.output or "")
    assert "sum=100" in (state.result or "") and "a good year" in (state.result or "")
    assert "HTTP 400" not in (state.result or "")  # the failed subtask is not aggregated
    (revision,) = state.revisions
    assert revision.number == 1
    assert revision.failed == ["analyze", "report"]
    assert "subtask 'analyze' failed" in revision.reason and "400" in revision.reason
    assert revision.added == ["analyze_alt", "report_alt"]
    assert revision.summary == (
        "kept 2 (fetch, summary); dropped 2 (analyze, report); added 2 (analyze_alt, report_alt)"
    )
    # The event log, the projection and the Temporal UI say what happened and why.
    revised = [e for e in events if e["kind"] == "plan_revised"]
    assert len(revised) == 1
    assert "plan revised (1): subtask 'analyze' failed" in json.dumps(dict(revised[0]), default=str)
    task_statuses = [e["status"] for e in events if e["kind"] == "task_status"]
    assert task_statuses == ["pending", "planning", "running", "planning", "running", "completed"]
    assert row is not None and row["status"] == "completed"
    assert [r["number"] for r in row["revisions"]] == [1]
    assert row["plan"]["subtasks"][-1]["id"] == "report_alt"
    assert any("replan 1 after analyze, report failed" in s for s in summaries)
    assert "plan revised (1): subtask 'analyze' failed" in metadata.current_details
    assert replan_activity_ids(log) == ["replan-1-0"]


async def test_replanning_is_off_by_default(engine_factory, tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    async with engine_factory(scenario(log, replan_rule(REVISION))) as engine:
        handle = await engine.start(request())
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await engine.state(handle)

    assert state.status == TaskStatus.FAILED
    assert state.error is not None and state.error.startswith("subtask 'analyze' failed")
    assert "replan" not in state.error
    assert state.revisions == []
    assert replan_activity_ids(log) == []
    assert state.subtask("report").result.status == SubtaskStatus.BLOCKED


async def test_the_task_fails_once_replans_are_used_up(engine_factory, tmp_path: Path) -> None:
    # The revision retries the broken analysis under a new id: it fails again.
    broken = {
        "subtasks": [
            {
                "id": "analyze_2",
                "description": "Analyze the figures with the broken tool, again",
                "depends_on": ["fetch"],
                "required_capabilities": ["data_analysis"],
            }
        ]
    }
    log = tmp_path / "calls.jsonl"
    async with engine_factory(scenario(log, replan_rule(broken))) as engine:
        handle = await engine.start(request(replan=ReplanOptions(max_replans=1)))
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await engine.state(handle)

    assert state.status == TaskStatus.FAILED
    assert state.error is not None
    assert state.error.startswith("subtask 'analyze_2' failed")
    assert state.error.endswith("; replans used up (1 of 1)")
    assert len(state.revisions) == 1
    assert replan_activity_ids(log) == ["replan-1-0"]
    assert agent_calls_by_subtask(log)["fetch"] == 1


async def test_a_revised_plan_needs_approval_too(engine_factory, tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    async with engine_factory(scenario(log, replan_rule(REVISION))) as engine:
        handle = await engine.start(
            request(replan=ReplanOptions(max_replans=2), require_approval=True)
        )
        await engine.wait_for(handle, lambda s: s.status == TaskStatus.AWAITING_APPROVAL)
        await handle.execute_update(TaskWorkflow.approve, ApprovalDecision(approved=True))
        pending = await engine.wait_for(
            handle, lambda s: s.status == TaskStatus.AWAITING_APPROVAL and bool(s.revisions)
        )
        # Nothing of the revised plan runs before it is approved.
        assert [s.id for s in pending.plan.subtasks] == [
            "fetch",
            "summary",
            "analyze_alt",
            "report_alt",
        ]
        assert pending.subtask("analyze_alt").result.status == SubtaskStatus.PENDING
        assert "analyze_alt" not in agent_calls_by_subtask(log)
        outcome = await handle.execute_update(
            TaskWorkflow.approve, ApprovalDecision(approved=True, comment="go on")
        )
        state = await handle.result()

    assert outcome.status == TaskStatus.RUNNING
    assert state.status == TaskStatus.COMPLETED
    assert state.approval_comment == "go on"
    assert agent_calls_by_subtask(log)["fetch"] == 1


async def test_rejecting_a_revised_plan_cancels_the_task(engine_factory, tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    async with engine_factory(scenario(log, replan_rule(REVISION))) as engine:
        handle = await engine.start(
            request(replan=ReplanOptions(max_replans=1), require_approval=True)
        )
        await engine.wait_for(handle, lambda s: s.status == TaskStatus.AWAITING_APPROVAL)
        await handle.execute_update(TaskWorkflow.approve, ApprovalDecision(approved=True))
        await engine.wait_for(
            handle, lambda s: s.status == TaskStatus.AWAITING_APPROVAL and bool(s.revisions)
        )
        await handle.execute_update(
            TaskWorkflow.approve, ApprovalDecision(approved=False, comment="no")
        )
        state = await handle.result()

    assert state.status == TaskStatus.CANCELLED
    assert state.error == "rejected: no"
    assert "analyze_alt" not in agent_calls_by_subtask(log)


INVALID_REVISION = {
    "subtasks": [
        {
            "id": "analyze",  # taken by the failed subtask
            "description": "Analyze the figures by hand",
            "depends_on": ["fetch"],
            "required_capabilities": ["data_analysis"],
        },
        {
            "id": "fetch",  # finished: kept, must not be listed
            "description": "Fetch again",
            "required_capabilities": ["api_integration"],
        },
        {
            "id": "report_alt",
            "description": "Write the report from the hand analysis",
            "depends_on": ["report"],  # blocked: not a dependency a revision may name
            "required_capabilities": ["file_processing"],
        },
    ]
}


async def test_an_invalid_revision_is_sent_back_and_repaired(
    engine_factory, tmp_path: Path
) -> None:
    log = tmp_path / "calls.jsonl"
    rules = [replan_rule(REVISION, match="The plan is invalid"), replan_rule(INVALID_REVISION)]
    async with engine_factory(scenario(log, *rules)) as engine:
        handle = await engine.start(request(replan=ReplanOptions(max_replans=1)))
        state = await handle.result()
        events = await engine.events(handle.id)

    assert state.status == TaskStatus.COMPLETED, state.error
    assert replan_activity_ids(log) == ["replan-1-0", "replan-1-1"]
    notes = [e["data"] for e in events if e["kind"] == "note"]
    invalid = next(str(n) for n in notes if "invalid revised plan" in str(n))
    assert "subtask id 'analyze' was used by a subtask that failed" in invalid
    assert "subtask 'fetch' is finished and kept" in invalid
    assert "depends on 'report', which blocked" in invalid
    assert agent_calls_by_subtask(log)["fetch"] == 1


async def test_a_revision_that_stays_invalid_fails_the_task_cleanly(
    engine_factory, tmp_path: Path
) -> None:
    log = tmp_path / "calls.jsonl"
    async with engine_factory(scenario(log, replan_rule(INVALID_REVISION))) as engine:
        handle = await engine.start(request(replan=ReplanOptions(max_replans=3)))
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await engine.state(handle)

    assert state.status == TaskStatus.FAILED
    assert state.error is not None and state.error.startswith("subtask 'analyze' failed")
    assert "replanning gave no valid plan in 3 attempts" in state.error
    assert state.revisions == []
    assert replan_activity_ids(log) == ["replan-1-0", "replan-1-1", "replan-1-2"]


async def test_cancelling_during_a_revision_cancels_the_task(
    engine_factory, tmp_path: Path
) -> None:
    log = tmp_path / "calls.jsonl"
    slow = replan_rule(REVISION, latency_ms=30_000)
    async with engine_factory(scenario(log, slow)) as engine:
        handle = await engine.start(request(replan=ReplanOptions(max_replans=1)))
        # PLANNING again after `summary` completed: the revision is being made. (The first
        # PLANNING, before the plan, has no subtasks yet.)
        await engine.wait_for(
            handle,
            lambda s: (
                s.status == TaskStatus.PLANNING
                and bool(s.subtasks)
                and s.subtask("summary").result.status == SubtaskStatus.COMPLETED
            ),
        )
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await engine.state(handle)

    assert state.status == TaskStatus.CANCELLED
    assert state.revisions == []
    assert "analyze_alt" not in agent_calls_by_subtask(log)


async def test_the_demo_scenario_replans_the_inventory_dashboard(
    engine_factory, tmp_path: Path
) -> None:
    """The example of docs/replanning.md, on the bundled `scripted/demo` scenario."""
    demo = yaml.safe_load((bundled_dir() / "demo.yaml").read_text())
    demo.update(latency_ms=0, jitter_ms=0, call_log=str(tmp_path / "calls.jsonl"))
    async with engine_factory(demo) as engine:
        handle = await engine.start(
            TaskRequest(
                description="Build the inventory dashboard from the legacy feed and the"
                " supplier list.",
                options=TaskOptions(replan=ReplanOptions(max_replans=1)),
            )
        )
        state = await handle.result()

    assert state.status == TaskStatus.COMPLETED, state.error
    assert [r.added for r in state.revisions] == [["archived_feed", "merge_dashboard_2"]]
    assert agent_calls_by_subtask(tmp_path / "calls.jsonl")["supplier_list"] == 1
    assert "17 below reorder level" in (state.result or "")


async def test_no_revision_once_the_budget_is_spent(engine_factory, tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    async with engine_factory(scenario(log, replan_rule(REVISION))) as engine:
        handle = await engine.start(
            request(replan=ReplanOptions(max_replans=1), budget=Budget(max_total_tokens=1))
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await engine.state(handle)

    assert state.status == TaskStatus.FAILED
    assert state.error is not None and "budget spent" in state.error
    assert state.revisions == [] and replan_activity_ids(log) == []


async def test_the_task_timeout_applies_while_the_planner_revises(
    engine_factory, tmp_path: Path
) -> None:
    log = tmp_path / "calls.jsonl"
    slow = replan_rule(REVISION, latency_ms=60_000)
    async with engine_factory(scenario(log, slow)) as engine:
        handle = await engine.start(request(replan=ReplanOptions(max_replans=1), task_timeout_s=20))
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await engine.state(handle)

    assert state.status == TaskStatus.TIMED_OUT
    assert state.error == "task timed out after 20s"
    assert state.revisions == []
    assert any(e["event"] == "start" and e["activity_id"] == "replan-1-0" for e in calls(log))
