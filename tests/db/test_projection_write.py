"""The projection's one-statement write: rows and events land, older versions never win,
retries change nothing, a finished task is counted once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from prometheus_client import REGISTRY

from mahsm.activities.store import ProjectionWriter
from mahsm.contracts.projection import StoreWrite, TaskEvent
from mahsm.contracts.task import (
    Capability,
    Subtask,
    SubtaskResult,
    SubtaskState,
    SubtaskStatus,
    TaskState,
    TaskStatus,
)

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _write(task_id: str, version: int, status: TaskStatus, **changes: object) -> StoreWrite:
    state = TaskState(
        task_id=task_id,
        description="Ünïcode task",
        status=status,
        created_at=T0,
        updated_at=T0 + timedelta(seconds=version),
        version=version,
        subtasks=[
            SubtaskState(
                subtask=Subtask(
                    id="s1",
                    description="first",
                    required_capabilities=[Capability.DATA_ANALYSIS, Capability.WEB_SCRAPING],
                    depends_on=["s0"],
                ),
                result=SubtaskResult(
                    status=SubtaskStatus.COMPLETED if version > 1 else SubtaskStatus.RUNNING,
                    output=f"output of v{version} with a NUL \x00",
                    started_at=T0,
                    finished_at=T0 + timedelta(seconds=version) if version > 1 else None,
                    pool="p-pool.data_analysis",
                    attempts=1,
                ),
            )
        ],
        **changes,
    )
    events = [
        TaskEvent(seq=version, kind="task_status", status=status, at=T0, message=f"v{version}")
    ]
    return StoreWrite(state=state, events=events)


def _finished(status: str) -> float:
    value = REGISTRY.get_sample_value("mahsm_tasks_finished_total", {"status": status})
    return value or 0.0


async def test_a_write_lands_whole_and_an_older_one_never_wins(db_pool: asyncpg.Pool) -> None:
    writer = ProjectionWriter(db_pool)
    task_id = f"task-{uuid.uuid4()}"
    finished_before = _finished("completed")

    await writer.write(_write(task_id, 1, TaskStatus.RUNNING))
    final = _write(task_id, 2, TaskStatus.COMPLETED, result="done")
    await writer.write(final)
    await writer.write(final)  # a retried write
    await writer.write(_write(task_id, 1, TaskStatus.RUNNING))  # a late, older one

    task = await db_pool.fetchrow("SELECT * FROM tasks WHERE id = $1", task_id)
    subtask = await db_pool.fetchrow("SELECT * FROM subtasks WHERE task_id = $1", task_id)
    events = await db_pool.fetch(
        "SELECT seq, kind, status, data FROM task_events WHERE task_id = $1 ORDER BY seq", task_id
    )
    assert task["status"] == "completed" and task["version"] == 2 and task["result"] == "done"
    assert task["description"] == "Ünïcode task"
    assert subtask["status"] == "completed" and subtask["version"] == 2
    assert subtask["output"] == "output of v2 with a NUL \ufffd"
    assert subtask["required_capabilities"] == ["data_analysis", "web_scraping"]
    assert subtask["depends_on"] == ["s0"]
    assert subtask["finished_at"] == T0 + timedelta(seconds=2)
    assert [(e["seq"], e["status"], e["data"]) for e in events] == [
        (1, "running", {"message": "v1"}),
        (2, "completed", {"message": "v2"}),
    ]
    assert _finished("completed") - finished_before == 1  # not again on the retry
