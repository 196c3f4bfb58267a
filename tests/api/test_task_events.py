"""The diff behind the SSE stream: event names and order between two views of a task."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import cast

import pytest

from api.auth import Caller
from api.deps import Backends
from api.read_model import TaskSnapshot
from api.routes import events as events_route
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


def test_an_older_view_moves_nothing_backwards() -> None:
    newer = view(TaskStatus.RUNNING, PLAN, a=SubtaskStatus.COMPLETED, b=SubtaskStatus.RUNNING)
    older = view(TaskStatus.PENDING, PLAN, a=SubtaskStatus.RUNNING, b=SubtaskStatus.PENDING)
    ended = view(TaskStatus.COMPLETED, PLAN, a=SubtaskStatus.COMPLETED, b=SubtaskStatus.COMPLETED)
    assert names(newer, older) == []
    assert names(ended, newer) == []


def snapshot(version: int, detail: TaskDetail) -> TaskSnapshot:
    return TaskSnapshot(detail=detail, result_ref=None, output_refs={}, version=version)


async def test_the_stream_skips_views_older_than_the_last_one_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Live answers interleaved with lagging Postgres rows (query timed out), as under load.
    first = snapshot(
        5, view(TaskStatus.RUNNING, PLAN, a=SubtaskStatus.RUNNING, b=SubtaskStatus.PENDING)
    )
    polls = iter(
        [
            snapshot(2, view(TaskStatus.PENDING, None)),  # a row written before the plan
            snapshot(
                6,
                view(TaskStatus.RUNNING, PLAN, a=SubtaskStatus.COMPLETED, b=SubtaskStatus.RUNNING),
            ),
            snapshot(5, first.detail),  # the row catching up, still behind
            snapshot(
                6,
                view(TaskStatus.RUNNING, PLAN, a=SubtaskStatus.COMPLETED, b=SubtaskStatus.RUNNING),
            ),
            snapshot(
                9,
                view(
                    TaskStatus.COMPLETED, PLAN, a=SubtaskStatus.COMPLETED, b=SubtaskStatus.COMPLETED
                ),
            ),
        ]
    )

    async def next_view(*_args: object, **_kwargs: object) -> TaskSnapshot:
        return next(polls)

    monkeypatch.setattr(events_route, "find_snapshot", next_view)
    monkeypatch.setattr(events_route, "POLL_S", 0)
    stream = events_route._Stream(cast(Backends, None), "task-x", Caller(user=None))
    sent = [(event.event, json.loads(str(event.data))) async for event in stream.events(first)]

    assert [(name, data.get("subtask", {}).get("id")) for name, data in sent] == [
        ("snapshot", None),
        ("subtask_completed", "a"),
        ("subtask_started", "b"),
        ("subtask_completed", "b"),
        ("task_status", None),
        ("task_ended", None),
    ]
    assert sent[-1][1]["task"]["status"] == "completed"
