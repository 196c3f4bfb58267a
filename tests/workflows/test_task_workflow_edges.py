"""TaskWorkflow under faults, bad plans, large outputs, budgets and approval."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError

from mahsm.contracts.task import (
    ApprovalDecision,
    Budget,
    SubtaskStatus,
    TaskOptions,
    TaskRequest,
    TaskStatus,
)
from mahsm.workflows.task_workflow import TaskWorkflow
from tests.engine_harness import agent_activities

ONE_STEP = [
    {"id": "only", "description": "Answer the question", "required_capabilities": ["data_analysis"]}
]
AGGREGATE = {"purpose": "aggregate", "respond": {"content": "FINAL:\n{context}"}}


FAULTS_TASK_ID = "task-5ca1ab1e-0000-4000-8000-000000000003"


def calls(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


async def test_transient_llm_faults_are_retried_to_success(engine_factory, data_dir: Path) -> None:
    log = data_dir / "calls.jsonl"
    scenario = {
        "seed": 2,
        "faults": {"rate": 0.5, "kinds": [429, 500]},
        "call_log": str(log),
        "rules": [
            {"purpose": "plan", "respond": {"plan": {"subtasks": ONE_STEP}}},
            {"purpose": "agent_step", "respond": {"content": "forty-two"}},
            AGGREGATE,
        ],
    }
    async with engine_factory(scenario) as engine:
        # Faults hash the request, which holds the task id: a fixed id makes them repeatable.
        handle = await engine.start(
            TaskRequest(description="Answer with faults injected"), task_id=FAULTS_TASK_ID
        )
        state = await handle.result()

    assert state.status == TaskStatus.COMPLETED and "forty-two" in (state.result or "")
    entries = calls(log)
    faults = [e for e in entries if e["event"] == "fault"]
    done = [e for e in entries if e["event"] == "done"]
    assert faults, "the scenario should have injected at least one fault"
    # plan and agent step (a single subtask needs no aggregation): each completed exactly once
    assert len(done) == 2
    assert all(
        int(e["attempt"]) > 1
        for e in done
        if e["activity_id"] in {f["activity_id"] for f in faults}
    )


async def test_401_fails_at_once_without_retries(engine_factory, data_dir: Path) -> None:
    log = data_dir / "calls.jsonl"
    scenario = {"call_log": str(log), "rules": [{"purpose": "plan", "respond": {"error": 401}}]}
    async with engine_factory(scenario) as engine:
        handle = await engine.start(TaskRequest(description="A task whose model rejects our key"))
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await engine.state(handle)

    assert state.status == TaskStatus.FAILED
    assert "401" in (state.error or "") or "key" in (state.error or "").lower()
    starts = [e for e in calls(log) if e["event"] == "start"]
    assert len(starts) == 1 and starts[0]["attempt"] == 1


@pytest.mark.parametrize(
    ("bad_plans", "expected_ids"),
    [
        (
            [
                "{not json",
                {
                    "subtasks": [
                        {
                            "id": "a",
                            "description": "A",
                            "required_capabilities": ["data_analysis"],
                            "depends_on": ["b"],
                        },
                        {
                            "id": "b",
                            "description": "B",
                            "required_capabilities": ["data_analysis"],
                            "depends_on": ["a"],
                        },
                    ]
                },
            ],
            ["fixed"],
        ),
        (
            [
                {
                    "subtasks": [
                        {
                            "id": "a",
                            "description": "A",
                            "required_capabilities": ["data_analysis"],
                            "depends_on": ["ghost"],
                        }
                    ]
                }
            ]
            * 3,
            ["task"],
        ),
    ],
    ids=["malformed-then-cycle-repaired", "unknown-dependency-falls-back"],
)
async def test_invalid_plans_are_repaired_or_replaced(
    engine_factory, bad_plans, expected_ids
) -> None:
    rules: list[dict[str, object]] = []
    for step, bad in enumerate(bad_plans):
        respond = {"raw": bad} if isinstance(bad, str) else {"plan": bad}
        rules.append({"purpose": "plan", "step": step, "respond": respond})
    rules.append(
        {
            "purpose": "plan",
            "respond": {
                "plan": {
                    "subtasks": [
                        {
                            "id": "fixed",
                            "description": "Fixed plan",
                            "required_capabilities": ["data_analysis"],
                        }
                    ]
                }
            },
        }
    )
    rules += [{"purpose": "agent_step", "respond": {"content": "ok"}}, AGGREGATE]
    async with engine_factory({"rules": rules}) as engine:
        handle = await engine.start(TaskRequest(description="Plan me something valid please"))
        state = await handle.result()
        notes = [
            e["data"].get("message", "")
            for e in await engine.events(handle.id)
            if e["kind"] == "note"
        ]

    assert state.status == TaskStatus.COMPLETED
    assert [s.subtask.id for s in state.subtasks] == expected_ids
    assert any("invalid plan" in n for n in notes)
    if expected_ids == ["task"]:
        assert any("unknown subtask 'ghost'" in n for n in notes)
        assert any("single subtask" in n for n in notes)
    else:
        assert any("not valid JSON" in n for n in notes) and any("cycle" in n for n in notes)


async def test_tool_output_over_2mb_completes_through_the_blob_store(
    engine_factory, data_dir: Path
) -> None:
    scenario = {
        "rules": [
            {
                "purpose": "plan",
                "respond": {
                    "plan": {
                        "subtasks": [
                            {
                                "id": "read",
                                "description": "Read big.txt",
                                "required_capabilities": ["file_processing"],
                            }
                        ]
                    }
                },
            },
            {
                "purpose": "agent_step",
                "after_tool": False,
                "respond": {
                    "tool_calls": [{"name": "read_file", "arguments": {"path": "big.txt"}}]
                },
            },
            {
                "purpose": "agent_step",
                "after_tool": True,
                "respond": {"content": "read the big file"},
            },
            AGGREGATE,
        ]
    }
    big = ("0123456789abcdef" * 64 + "\n") * 2500  # about 2.6 MB
    # The whole 2.6 MB read reaches the blob store: raise the tool output bound above it.
    async with engine_factory(scenario, tool_output_max_bytes=4 * 1024 * 1024) as engine:
        task_id = f"task-{uuid.uuid4()}"
        workspace = engine.settings.workspace_root() / task_id
        workspace.mkdir(parents=True)
        (workspace / "big.txt").write_text(big)
        handle = await engine.start(
            TaskRequest(description="Read a very large file"), task_id=task_id
        )
        state = await handle.result()
        size = await engine.pool.fetchval(
            "SELECT max(size_bytes) FROM blobs WHERE size_bytes >= $1", len(big)
        )

    assert state.status == TaskStatus.COMPLETED
    assert state.subtask("read").result.output == "read the big file"
    assert size == len(big.encode())


async def test_budget_spent_stops_new_subtasks_and_fails_the_task(engine_factory) -> None:
    chain = [
        {"id": "a", "description": "Step A", "required_capabilities": ["data_analysis"]},
        {
            "id": "b",
            "description": "Step B",
            "depends_on": ["a"],
            "required_capabilities": ["data_analysis"],
        },
        {
            "id": "c",
            "description": "Step C",
            "depends_on": ["b"],
            "required_capabilities": ["data_analysis"],
        },
    ]
    scenario = {
        "rules": [
            {"purpose": "plan", "respond": {"plan": {"subtasks": chain}}},
            {
                "purpose": "agent_step",
                "respond": {"content": "step done with several words of output"},
            },
            AGGREGATE,
        ]
    }
    description = "A three step task under a budget"
    async with engine_factory(scenario) as engine:
        # Measure the planner's usage on an identical task held at approval.
        probe = await engine.start(
            TaskRequest(description=description, options=TaskOptions(require_approval=True))
        )
        held = await engine.wait_for(probe, lambda s: s.status == TaskStatus.AWAITING_APPROVAL)
        await probe.cancel()
        plan_tokens = held.usage.total_tokens
        assert plan_tokens > 0

        budget = Budget(max_total_tokens=plan_tokens + 1)
        handle = await engine.start(
            TaskRequest(description=description, options=TaskOptions(budget=budget))
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await engine.state(handle)

    assert state.status == TaskStatus.FAILED and "budget" in (state.error or "")
    a, b, c = (state.subtask(s).result for s in "abc")
    assert a.status == SubtaskStatus.FAILED and "budget" in (a.error or "")
    assert b.started_at is None and c.started_at is None
    assert b.status in (SubtaskStatus.BLOCKED, SubtaskStatus.CANCELLED)


async def test_approval_gates_execution(engine_factory) -> None:
    scenario = {
        "rules": [
            {"purpose": "plan", "respond": {"plan": {"subtasks": ONE_STEP}}},
            {"purpose": "agent_step", "respond": {"content": "approved work"}, "latency_ms": 1500},
            AGGREGATE,
        ]
    }
    options = TaskOptions(require_approval=True)
    async with engine_factory(scenario) as engine:
        approved = await engine.start(TaskRequest(description="Needs a human yes", options=options))
        rejected = await engine.start(TaskRequest(description="Needs a human no", options=options))
        for handle in (approved, rejected):
            await engine.wait_for(handle, lambda s: s.status == TaskStatus.AWAITING_APPROVAL)
        assert (await engine.state(approved)).subtask("only").result.status == SubtaskStatus.PENDING

        outcome = await approved.execute_update(
            TaskWorkflow.approve, ApprovalDecision(approved=True, comment="go")
        )
        assert outcome.status == TaskStatus.RUNNING
        refusal = await rejected.execute_update(
            TaskWorkflow.approve, ApprovalDecision(approved=False, comment="no")
        )
        assert refusal.status == TaskStatus.CANCELLED

        with pytest.raises(WorkflowUpdateFailedError) as again:
            await approved.execute_update(TaskWorkflow.approve, ApprovalDecision(approved=True))
        assert "not awaiting approval" in str(again.value.cause)
        done = await approved.result()
        ended = await rejected.result()

    assert done.status == TaskStatus.COMPLETED and "approved work" in (done.result or "")
    assert ended.status == TaskStatus.CANCELLED and ended.error == "rejected: no"
    assert ended.subtask("only").result.started_at is None


async def test_many_inline_items_never_add_up_past_the_payload_limit(
    engine_factory, data_dir: Path
) -> None:
    """Twelve ~100 KiB tool outputs (each under the claim-check threshold) and a 40 KiB
    answer: the transcript moves its largest contents to blobs, the answer travels by
    reference, and no LLM request carries more than about 1 MiB inline."""
    reads = [{"name": "read_file", "arguments": {"path": "part.txt"}} for _ in range(12)]
    long_answer = "y" * 40_000
    scenario = {
        "rules": [
            {
                "purpose": "plan",
                "respond": {
                    "plan": {
                        "subtasks": [
                            {
                                "id": "read",
                                "description": "Read part.txt many times",
                                "required_capabilities": ["file_processing"],
                            }
                        ]
                    }
                },
            },
            {"purpose": "agent_step", "after_tool": False, "respond": {"tool_calls": reads}},
            {"purpose": "agent_step", "after_tool": True, "respond": {"content": long_answer}},
            AGGREGATE,
        ]
    }
    async with engine_factory(scenario) as engine:
        task_id = f"task-{uuid.uuid4()}"
        workspace = engine.settings.workspace_root() / task_id
        workspace.mkdir(parents=True)
        (workspace / "part.txt").write_text("z" * 100_000)
        handle = await engine.start(
            TaskRequest(description="Read one part many times"), task_id=task_id
        )
        state = await handle.result()
        llm_inputs = [
            len(attributes.input.SerializeToString())
            for attributes in await agent_activities(engine.client, task_id, "read")
            if attributes.activity_type.name == "llm_complete"
        ]
        row = (await engine.subtask_rows(task_id))["read"]

    read = state.subtask("read").result
    assert state.status == TaskStatus.COMPLETED
    assert read.output is None and read.output_ref is not None
    assert read.output_ref.size_bytes == len(long_answer)
    assert row["output"] is None and row["output_ref"]["size_bytes"] == len(long_answer)
    assert len(llm_inputs) == 2 and max(llm_inputs) < 1_100_000
