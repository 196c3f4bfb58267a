"""The events of `GET /tasks/{task_id}/events`: what changed between two views of a task.

The stream polls the task and turns the differences into named events. A subtask that both
started and finished between two polls still yields `subtask_started` before its outcome.
"""

from __future__ import annotations

from typing import Any

from api.schemas import SubtaskView, TaskDetail
from mahsm.contracts.task import SubtaskStatus, TaskStatus

SNAPSHOT = "snapshot"
PLAN_READY = "plan_ready"
TASK_STATUS = "task_status"
TASK_ENDED = "task_ended"
ERROR = "error"

SUBTASK_EVENTS = {
    SubtaskStatus.RUNNING: "subtask_started",
    SubtaskStatus.COMPLETED: "subtask_completed",
    SubtaskStatus.FAILED: "subtask_failed",
    SubtaskStatus.BLOCKED: "subtask_blocked",
    SubtaskStatus.CANCELLED: "subtask_cancelled",
}

# The order a task goes through its statuses; every final status comes last.
_TASK_ORDER = {
    TaskStatus.PENDING: 0,
    TaskStatus.PLANNING: 1,
    TaskStatus.AWAITING_APPROVAL: 2,
    TaskStatus.RUNNING: 3,
}
_FINAL = len(_TASK_ORDER)

Event = tuple[str, dict[str, Any]]


def detail_event(name: str, detail: TaskDetail) -> Event:
    """`snapshot` or `task_ended`: the whole task, shaped like `GET /tasks/{task_id}`."""
    return name, detail.model_dump(mode="json")


def _task_status(detail: TaskDetail) -> Event:
    task = detail.task
    return TASK_STATUS, {
        "task_id": task.id,
        "status": task.status.value,
        "error": task.error,
        "usage": task.usage.model_dump(mode="json"),
    }


def _subtask(name: str, detail: TaskDetail, subtask: SubtaskView) -> Event:
    return name, {
        "task_id": detail.task.id,
        "subtask": subtask.model_dump(mode="json"),
        "usage": detail.task.usage.model_dump(mode="json"),
    }


def _subtask_changes(before: TaskDetail, after: TaskDetail) -> list[Event]:
    known = {s.id: s.status for s in before.subtask_results}
    events: list[Event] = []
    for subtask in after.subtask_results:
        previous = known.get(subtask.id, SubtaskStatus.PENDING)
        if subtask.status == previous or previous.is_terminal:
            continue  # unchanged, or an older view of a subtask that has already ended
        skipped_start = previous == SubtaskStatus.PENDING and subtask.started_at is not None
        if skipped_start and subtask.status in (SubtaskStatus.COMPLETED, SubtaskStatus.FAILED):
            events.append(_subtask(SUBTASK_EVENTS[SubtaskStatus.RUNNING], after, subtask))
        name = SUBTASK_EVENTS.get(subtask.status)
        if name is not None:
            events.append(_subtask(name, after, subtask))
    return events


def _moved_on(before: TaskStatus, after: TaskStatus) -> bool:
    return _TASK_ORDER.get(after, _FINAL) > _TASK_ORDER.get(before, _FINAL)


def changes(before: TaskDetail, after: TaskDetail) -> list[Event]:
    """The events that lead from `before` to `after`, in the order they happened.

    Only forward moves are reported: a task or subtask shown in an earlier status in `after`
    than in `before` (an older view) yields no event.
    """
    events: list[Event] = []
    if before.task.plan is None and after.task.plan is not None:
        events.append(
            (
                PLAN_READY,
                {
                    "task_id": after.task.id,
                    "plan": after.task.plan.model_dump(mode="json"),
                    "subtask_results": [s.model_dump(mode="json") for s in after.subtask_results],
                },
            )
        )
    status_changed = _moved_on(before.task.status, after.task.status)
    if status_changed and not after.task.status.is_terminal:
        events.append(_task_status(after))
    events += _subtask_changes(before, after)
    if status_changed and after.task.status.is_terminal:
        events.append(_task_status(after))
    return events
