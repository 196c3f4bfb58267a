"""The diff behind the SSE stream: event names and order between two views of a task."""

from __future__ import annotations

from datetime import UTC, datetime

from api.schemas import SubtaskView, TaskDetail, TaskView
from api.task_events import changes
from mahsm.contracts.task import Capability, Plan, Subtask, SubtaskStatus, TaskStatus, Usage

NOW = datetime(2025, 1, 1, tzinfo=UTC)
PLAN = Plan(
    subtasks=[
        Subtask(id=s, description=s, required_capabilities=[Capability.DATA_ANALYSIS])
        for s in ("a", "b")
    ]
)


def view(status: TaskStatus, plan: Plan | None, **subtasks: SubtaskStatus) -> TaskDetail:
    return TaskDetail(
        task=TaskView(
            id="task-x",
            user_id=None,
            description="d",
            status=status,
            created_at=NOW,
            updated_at=NOW,
            plan=plan,
            result=None,
            error=None,
            usage=Usage(),
        ),
        subtask_results=[
            SubtaskView(
                id=sid,
                description=sid,
                required_capabilities=[Capability.DATA_ANALYSIS],
                depends_on=[],
                status=status_,
                output=None,
                error=None,
                agent=None,
                started_at=None if status_ == SubtaskStatus.PENDING else NOW,
                finished_at=None,
                attempts=0,
                usage=Usage(),
                waiting_for=None,
            )
            for sid, status_ in subtasks.items()
        ],
    )


def names(before: TaskDetail, after: TaskDetail) -> list[str]:
    return [name for name, _ in changes(before, after)]


def test_plan_then_running_then_subtask_events_in_order() -> None:
    before = view(TaskStatus.PLANNING, None)
    after = view(TaskStatus.RUNNING, PLAN, a=SubtaskStatus.RUNNING, b=SubtaskStatus.PENDING)
    assert names(before, after) == ["plan_ready", "task_status", "subtask_started"]


def test_a_start_missed_between_polls_is_still_reported_before_the_outcome() -> None:
    before = view(TaskStatus.RUNNING, PLAN, a=SubtaskStatus.PENDING, b=SubtaskStatus.PENDING)
    after = view(TaskStatus.FAILED, PLAN, a=SubtaskStatus.FAILED, b=SubtaskStatus.BLOCKED)
    assert names(before, after) == [
        "subtask_started",
        "subtask_failed",
        "subtask_blocked",
        "task_status",
    ]


def test_nothing_changed_means_no_events() -> None:
    same = view(TaskStatus.RUNNING, PLAN, a=SubtaskStatus.RUNNING, b=SubtaskStatus.PENDING)
    assert changes(same, same) == []
