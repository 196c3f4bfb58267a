"""The task event log as the API reads it: rows of `task_events`, in `seq` order.

`TaskWorkflow` keeps one ordered log per task (kinds `task_status`, `plan_ready`,
`subtask_status`, `note`) and writes it to `task_events` with idempotent inserts, possibly
several rows per transaction. `GET /tasks/{task_id}/events` streams exactly these rows: the
event name is the row's `kind`, the event id its `seq`. `task_ended` and `error` are the only
names the stream adds, to close it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

import asyncpg
from sse_starlette import ServerSentEvent

from mahsm.api.read_model import QUERY_TIMEOUT_S
from mahsm.contracts.task import TaskStatus

TASK_STATUS = "task_status"
TASK_ENDED = "task_ended"
ERROR = "error"

# Rows read per query; a longer backlog is read in several.
READ_BATCH = 500
_FINAL = {status.value for status in TaskStatus if status.is_terminal}

_READ_LOG = """
SELECT seq, kind, subtask_id, status, data, created_at FROM task_events
WHERE task_id = $1 AND seq > $2 ORDER BY seq LIMIT $3
"""


@dataclass(frozen=True)
class LogEvent:
    """One row of a task's event log."""

    task_id: str
    seq: int
    kind: str
    at: datetime
    subtask_id: str | None
    status: str | None
    data: dict[str, Any]

    @property
    def ends_task(self) -> bool:
        """True for the `task_status` event that moves the task to a final status."""
        return self.kind == TASK_STATUS and self.status in _FINAL

    def payload(self) -> dict[str, Any]:
        """The SSE `data` of this event: the row's columns plus its optional `data` fields."""
        return {
            **self.data,
            "task_id": self.task_id,
            "seq": self.seq,
            "kind": self.kind,
            "at": self.at.isoformat(),
            "subtask_id": self.subtask_id,
            "status": self.status,
            "message": self.data.get("message"),
        }

    @cached_property
    def sse(self) -> bytes:
        """This event as SSE bytes (name = kind, id = seq), encoded once for every stream.

        The hub hands the same `LogEvent` to all the streams of a task, so N streams cost one
        JSON encoding per event, not N.
        """
        data = json.dumps(self.payload())
        return ServerSentEvent(data=data, event=self.kind, id=str(self.seq)).encode()


@dataclass(frozen=True)
class TaskEnd:
    """How a task ended: the data of the stream's closing `task_ended` event."""

    task_id: str
    status: str
    error: str | None

    def payload(self) -> dict[str, Any]:
        """The SSE `data` of `task_ended`."""
        return {"task_id": self.task_id, "status": self.status, "error": self.error}

    @classmethod
    def of(cls, event: LogEvent) -> TaskEnd:
        """The end announced by a final `task_status` event."""
        status = event.status or ""
        return cls(task_id=event.task_id, status=status, error=event.data.get("message"))


@dataclass(frozen=True)
class TaskHead:
    """What a stream needs to know of a task before it starts: owner and, if ended, how."""

    user_id: str | None
    ended: TaskEnd | None


async def read_log(pool: asyncpg.Pool, task_id: str, after: int) -> list[LogEvent]:
    """Up to `READ_BATCH` events of the task with `seq > after`, in order."""
    rows = await pool.fetch(_READ_LOG, task_id, after, READ_BATCH, timeout=QUERY_TIMEOUT_S)
    return [
        LogEvent(
            task_id=task_id,
            seq=row["seq"],
            kind=row["kind"],
            at=row["created_at"],
            subtask_id=row["subtask_id"],
            status=row["status"],
            data=row["data"] or {},
        )
        for row in rows
    ]


async def read_head(pool: asyncpg.Pool, task_id: str) -> TaskHead | None:
    """The task's owner and end from its Postgres row; None when no row exists (yet)."""
    row = await pool.fetchrow(
        "SELECT user_id, status, error FROM tasks WHERE id = $1", task_id, timeout=QUERY_TIMEOUT_S
    )
    if row is None:
        return None
    ended = TaskEnd(task_id, row["status"], row["error"]) if row["status"] in _FINAL else None
    return TaskHead(user_id=row["user_id"], ended=ended)


def contiguous(events: list[LogEvent], after: int) -> int:
    """How many of `events` (ordered, all past `after`) follow `after` without a gap."""
    expected = after + 1
    for count, event in enumerate(events):
        if event.seq != expected:
            return count
        expected += 1
    return len(events)
