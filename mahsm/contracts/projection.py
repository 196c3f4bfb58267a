"""The Postgres projection's payload: what a write of a task's state carries.

Kept apart from `engine.py` so that `llm.py` can carry a write on an LLM call (the engine
writes the projection with the activities it runs anyway) without an import cycle.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from mahsm.contracts.task import SubtaskStatus, TaskState, TaskStatus


class TaskEvent(BaseModel):
    """One entry of a task's event log."""

    seq: int
    kind: str
    at: datetime
    subtask_id: str | None = None
    status: TaskStatus | SubtaskStatus | None = None
    message: str | None = None


class StoreWrite(BaseModel):
    """Input of `store_task`: the task's latest state, changed subtasks, new events.

    `state.subtasks` holds only the subtasks changed since the previous write, and
    `state.plan` is set only in the write that follows planning; rows are
    written only when `state.version` is newer than the stored one, so writes are idempotent
    and safe to retry.
    """

    state: TaskState
    events: list[TaskEvent] = Field(default_factory=list)
