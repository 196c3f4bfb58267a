"""The Postgres projection of tasks: idempotent, version-guarded writes from the workflow."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from mahsm import metrics
from mahsm.activities.blobs import BlobStore
from mahsm.contracts.engine import BlobText
from mahsm.contracts.projection import StoreWrite, TaskEvent
from mahsm.contracts.task import BlobRef, SubtaskState, TaskState, TaskStatus
from mahsm.tracing import current_trace_id

# One statement per write: the task row, its changed subtasks and its new events (each set a
# JSON array read by `jsonb_to_recordset`), atomic without a transaction of our own. One
# round trip instead of six (BEGIN, the task, the subtasks, the events, COMMIT and the
# finish check): the projection was most of the worker's CPU beyond the one-workflow floor
# (docs/performance.md). `before` is the task's status before this write (the row locked,
# so two writes that end a task count it finished once); `applied` whether the version
# guard let the task row through.
_WRITE = """
WITH before AS (
    SELECT status FROM tasks WHERE id = $1 FOR UPDATE
), task AS (
    INSERT INTO tasks (id, user_id, description, status, model, options, plan, result,
                       result_ref, error, usage, version, created_at, updated_at, pipeline,
                       outputs, revisions, estimate, trace_id)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
            $19)
    ON CONFLICT (id) DO UPDATE SET
        status = EXCLUDED.status, model = EXCLUDED.model, options = EXCLUDED.options,
        plan = COALESCE(EXCLUDED.plan, tasks.plan), result = EXCLUDED.result,
        result_ref = EXCLUDED.result_ref,
        error = EXCLUDED.error, usage = EXCLUDED.usage, version = EXCLUDED.version,
        updated_at = EXCLUDED.updated_at, pipeline = EXCLUDED.pipeline,
        outputs = EXCLUDED.outputs, revisions = EXCLUDED.revisions,
        estimate = COALESCE(EXCLUDED.estimate, tasks.estimate),
        trace_id = COALESCE(tasks.trace_id, EXCLUDED.trace_id)
    WHERE tasks.version < EXCLUDED.version
    RETURNING 1
), subtask AS (
    INSERT INTO subtasks (task_id, id, description, required_capabilities, depends_on,
                          priority, status, output, output_ref, error, agent, pool, attempts,
                          usage, started_at, finished_at, version, waiting_for, kind, value,
                          model, detections, llm_calls)
    SELECT $1, r.id, r.description, r.required_capabilities, r.depends_on, r.priority,
           r.status, r.output, r.output_ref, r.error, r.agent, r.pool, r.attempts, r.usage,
           r.started_at, r.finished_at, $12, r.waiting_for, r.kind, r.value, r.model,
           r.detections, r.llm_calls
    FROM jsonb_to_recordset($20::jsonb) AS r(
        id TEXT, description TEXT, required_capabilities TEXT[], depends_on TEXT[],
        priority INT, status TEXT, output TEXT, output_ref JSONB, error TEXT, agent TEXT,
        pool TEXT, attempts INT, usage JSONB, started_at TIMESTAMPTZ,
        finished_at TIMESTAMPTZ, waiting_for TEXT, kind TEXT, value JSONB, model TEXT,
        detections JSONB, llm_calls INT)
    ON CONFLICT (task_id, id) DO UPDATE SET
        status = EXCLUDED.status, output = EXCLUDED.output, output_ref = EXCLUDED.output_ref,
        error = EXCLUDED.error, agent = EXCLUDED.agent, pool = EXCLUDED.pool,
        attempts = EXCLUDED.attempts, usage = EXCLUDED.usage,
        started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
        version = EXCLUDED.version, waiting_for = EXCLUDED.waiting_for,
        value = EXCLUDED.value, model = EXCLUDED.model, detections = EXCLUDED.detections,
        llm_calls = EXCLUDED.llm_calls
    WHERE subtasks.version < EXCLUDED.version
), event AS (
    INSERT INTO task_events (task_id, seq, kind, subtask_id, status, data, created_at)
    SELECT $1, r.seq, r.kind, r.subtask_id, r.status, r.data, r.created_at
    FROM jsonb_to_recordset($21::jsonb) AS r(
        seq BIGINT, kind TEXT, subtask_id TEXT, status TEXT, data JSONB,
        created_at TIMESTAMPTZ)
    ON CONFLICT (task_id, seq) DO NOTHING
)
SELECT (SELECT status FROM before) AS before, EXISTS (SELECT 1 FROM task) AS applied
"""


def _text(value: str | None) -> str | None:
    """Postgres text cannot hold NUL; model outputs occasionally do."""
    return value.replace("\x00", "\ufffd") if value else value


def _json(value: Any) -> Any:
    """A JSON value Postgres' jsonb accepts (it cannot hold NUL either)."""
    if value is None:
        return None
    text = json.dumps(value, ensure_ascii=False)
    return json.loads(text.replace("\\u0000", "\\ufffd")) if "\\u0000" in text else value


def _dump(ref: BlobRef | None) -> object:
    return ref.model_dump() if ref else None


def _task_row(state: TaskState) -> tuple[object, ...]:
    return (
        state.task_id,
        state.user_id,
        state.description,
        state.status.value,
        state.model,
        state.options.model_dump(mode="json"),
        state.plan.model_dump(mode="json") if state.plan else None,
        _text(state.result),
        _dump(state.result_ref),
        _text(state.error),
        state.usage.model_dump(),
        state.version,
        state.created_at,
        state.updated_at,
        state.pipeline,
        _json(state.outputs),
        [_json(r.model_dump(mode="json")) for r in state.revisions],
        state.estimate.model_dump(mode="json") if state.estimate else None,
    )


def _subtask_row(item: SubtaskState) -> dict[str, object]:
    """A subtask as one element of the write's JSON array (columns by name)."""
    subtask, result = item.subtask, item.result
    return {
        "id": subtask.id,
        "description": subtask.description,
        "required_capabilities": [c.value for c in subtask.required_capabilities],
        "depends_on": subtask.depends_on,
        "priority": subtask.priority,
        "status": result.status.value,
        "output": _text(result.output),
        "output_ref": _dump(result.output_ref),
        "error": _text(result.error),
        "agent": result.agent,
        "pool": result.pool,
        "attempts": result.attempts,
        "usage": result.usage.model_dump(),
        "started_at": _time(result.started_at),
        "finished_at": _time(result.finished_at),
        "waiting_for": _text(result.waiting_for),
        "kind": subtask.kind.value,
        "value": _json(result.value),
        "model": result.model,
        "detections": result.detections,
        "llm_calls": result.llm_calls,
    }


def _event_row(event: TaskEvent) -> dict[str, object]:
    return {
        "seq": event.seq,
        "kind": event.kind,
        "subtask_id": event.subtask_id,
        "status": event.status.value if event.status else None,
        "data": {"message": _text(event.message)} if event.message else {},
        "created_at": _time(event.at),
    }


def _time(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _terminal(status: str | None) -> bool:
    return status is not None and TaskStatus(status).is_terminal


class ProjectionWriter:
    """Writes a `StoreWrite` to Postgres; every write may be retried, repeated or reordered.

    `store_task` uses it, and so does `llm_complete`, which writes the projection change a
    call carries while the provider answers (the engine then runs no activity of its own for
    most writes).
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def write(self, write: StoreWrite) -> None:
        """Upsert the task row, the changed subtask rows and the new events, atomically."""
        state = write.state
        row = await self.pool.fetchrow(
            _WRITE,
            *_task_row(state),
            current_trace_id(),
            [_subtask_row(s) for s in state.subtasks],
            [_event_row(e) for e in write.events],
        )
        assert row is not None  # the statement's final SELECT always returns one row
        if state.status.is_terminal and row["applied"] and not _terminal(row["before"]):
            # A task is counted finished once: by the write that ended it.
            metrics.TASKS_FINISHED.labels(state.status.value).inc()


class StoreActivities:
    """Writes the workflow's state to Postgres; every write may be retried or reordered."""

    def __init__(self, *, pool: asyncpg.Pool, blobs: BlobStore) -> None:
        self.pool = pool
        self.blobs = blobs
        self.projection = ProjectionWriter(pool)

    @activity.defn(name="store_task")
    async def store_task(self, write: StoreWrite) -> None:
        """Upsert the task row, the changed subtask rows and the new events in one statement.

        Connection failures are retried by Temporal; a row Postgres refuses (a data error)
        would be refused again, so it fails at once instead of hanging the task.
        """
        try:
            await self.projection.write(write)
        except asyncpg.DataError as error:
            raise ApplicationError(
                f"Postgres refused the state of {write.state.task_id}: {error}",
                type="StoreDataError",
                non_retryable=True,
            ) from None

    @activity.defn(name="blob_put_text")
    async def blob_put_text(self, blob: BlobText) -> BlobRef:
        """Store a large text (a transcript) and return its claim check."""
        return await self.blobs.put(blob.text.encode("utf-8"))
