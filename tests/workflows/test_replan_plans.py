"""How a revision is checked against the task's state: pure, no Temporal needed."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from mahsm.contracts.task import (
    MAX_SUBTASKS,
    Capability,
    Plan,
    Subtask,
    SubtaskState,
    SubtaskStatus,
    TaskState,
)
from mahsm.workflows.replanner import merged_revision, revision_summary
from mahsm.workflows.task_recorder import TaskRecorder

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def node(sid: str, *after: str) -> Subtask:
    return Subtask(
        id=sid,
        description=f"Do {sid}",
        required_capabilities=[Capability.DATA_ANALYSIS],
        depends_on=list(after),
    )


def recorder(statuses: dict[str, SubtaskStatus], *, earlier: int = 0) -> TaskRecorder:
    """A task whose plan holds `statuses`' subtasks, after `earlier` dropped failed ones."""
    plan = Plan(subtasks=[node(sid) for sid in statuses])
    dropped = [
        SubtaskState(subtask=node(f"old{i}"), result={"status": SubtaskStatus.FAILED})
        for i in range(earlier)
    ]
    state = TaskState(
        task_id="task-x",
        description="A task to revise",
        created_at=NOW,
        updated_at=NOW,
        plan=plan,
        subtasks=dropped
        + [
            SubtaskState(subtask=node(sid), result={"status": status})
            for sid, status in statuses.items()
        ],
    )
    return TaskRecorder(state)


def answer(*subtasks: Subtask) -> str:
    return json.dumps({"subtasks": [s.model_dump(mode="json") for s in subtasks]})


STATUSES = {
    "done": SubtaskStatus.COMPLETED,
    "broken": SubtaskStatus.FAILED,
    "after": SubtaskStatus.BLOCKED,
}


def test_a_valid_revision_keeps_finished_subtasks_first_and_may_depend_on_them() -> None:
    task = recorder(STATUSES)
    plan, errors = merged_revision(task, answer(node("fix", "done"), node("next", "fix")))
    assert errors == []
    assert plan is not None and [s.id for s in plan.subtasks] == ["done", "fix", "next"]
    assert revision_summary(task, plan) == (
        "kept 1 (done); dropped 2 (broken, after); added 2 (fix, next)"
    )


def test_revisions_that_reuse_ids_or_lean_on_failures_are_refused_with_reasons() -> None:
    plan, errors = merged_revision(
        recorder(STATUSES),
        answer(node("done"), node("broken"), node("new", "after"), node("other", "ghost")),
    )
    assert plan is None
    assert errors == [
        "subtask 'done' is finished and kept as it is; do not list it again (a new subtask"
        " may depend on it)",
        "subtask id 'broken' was used by a subtask that failed; give the new subtask a new id",
        "subtask 'new' depends on 'after', which blocked; depend only on finished subtasks"
        " (done) or new ones",
    ]
    # Once those are fixed, the usual plan checks run over the merged plan.
    plan, errors = merged_revision(recorder(STATUSES), answer(node("other", "ghost")))
    assert errors == ["subtask 'other' depends on unknown subtask 'ghost'"]


def test_a_task_holds_at_most_max_subtasks_in_its_whole_life() -> None:
    task = recorder(STATUSES, earlier=MAX_SUBTASKS - 4)  # 46 recorded + 3 in the plan = 49
    plan, errors = merged_revision(task, answer(node("a"), node("b")))
    assert plan is None
    assert errors == [
        f"the revision adds 2 subtasks; a task has at most {MAX_SUBTASKS} in all, so at most"
        " 1 more are allowed"
    ]
    plan, errors = merged_revision(task, answer(node("a", "done")))
    assert errors == [] and plan is not None


def test_answers_that_are_not_plans_say_why() -> None:
    task = recorder(STATUSES)
    assert merged_revision(task, None) == (
        None,
        ["the answer was empty; return the new subtasks as a plan in JSON"],
    )
    plan, errors = merged_revision(task, "{nope")
    assert plan is None and errors[0].startswith("the answer is not valid JSON")
    plan, errors = merged_revision(task, json.dumps({"subtasks": []}))
    assert plan is None and errors[0].startswith("subtasks:")
