"""The Postgres projection of tasks: idempotent, version-guarded writes from the workflow."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from mahsm import metrics
from mahsm.activities.blobs import BlobStore
from mahsm.contracts.engine import BlobText
from mahsm.contracts.projection import StoreWrite
from mahsm.contracts.task import BlobRef, SubtaskState, TaskState, TaskStatus
from mahsm.tracing import current_trace_id

_UPSERT_TASK = """
INSERT INTO tasks (id, user_id, description, status, model, options, plan, result, result_ref,
                   error, usage, version, created_at, updated_at, pipeline, outputs, revisions,
                   estimate, trace_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
ON CONFLICT (id) DO UPDATE SET
    status = EXCLUDED.status, model = EXCLUDED.model, options = EXCLUDED.options,
    plan = COALESCE(EXCLUDED.plan, tasks.plan), result = EXCLUDED.result,
    result_ref = EXCLUDED.result_ref,
    error = EXCLUDED.error, usage = EXCLUDED.usage, version = EXCLUDED.version,
    updated_at = EXCLUDED.updated_at, pipeline = EXCLUDED.pipeline, outputs = EXCLUDED.outputs,
    revisions = EXCLUDED.revisions,
    estimate = COALESCE(EXCLUDED.estimate, tasks.estimate),
    trace_id = COALESCE(tasks.trace_id, EXCLUDED.trace_id)
WHERE tasks.version < EXCLUDED.version
"""

_UPSERT_SUBTASK = """
INSERT INTO subtasks (task_id, id, description, required_capabilities, depends_on, priority,
                      status, output, output_ref, error, agent, pool, attempts, usage,
                      started_at, finished_at, version, waiting_for, kind, value, model,
                      detections, llm_calls)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
        $19, $20, $21, $22, $23)
ON CONFLICT (task_id, id) DO UPDATE SET
    status = EXCLUDED.status, output = EXCLUDED.output, output_ref = EXCLUDED.output_ref,
    error = EXCLUDED.error, agent = EXCLUDED.agent, pool = EXCLUDED.pool,
    attempts = EXCLUDED.attempts, usage = EXCLUDED.usage, started_at = EXCLUDED.started_at,
    finished_at = EXCLUDED.finished_at, version = EXCLUDED.version,
    waiting_for = EXCLUDED.waiting_for, value = EXCLUDED.value, model = EXCLUDED.model,
    detections = EXCLUDED.detections, llm_calls = EXCLUDED.llm_calls
WHERE subtasks.version < EXCLUDED.version
"""


_INSERT_EVENT = """
INSERT INTO task_events (task_id, seq, kind, subtask_id, status, data, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (task_id, seq) DO NOTHING
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


def _subtask_row(task_id: str, version: int, item: SubtaskState) -> tuple[object, ...]:
    subtask, result = item.subtask, item.result
    return (
        task_id,
        subtask.id,
        subtask.description,
        [c.value for c in subtask.required_capabilities],
        subtask.depends_on,
        subtask.priority,
        result.status.value,
        _text(result.output),
        _dump(result.output_ref),
        _text(result.error),
        result.agent,
        result.pool,
        result.attempts,
        result.usage.model_dump(),
        result.started_at,
        result.finished_at,
        version,
        _text(result.waiting_for),
        subtask.kind.value,
        _json(result.value),
        result.model,
        result.detections,
        result.llm_calls,
    )


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
        """Upsert the task row, the changed subtask rows and the new events in one transaction."""
        state = write.state
        finishes = state.status.is_terminal
        async with self.pool.acquire() as connection, connection.transaction():
            before = None
            if finishes:  # a task is counted finished once: by the write that ended it
                before = await connection.fetchval(
                    "SELECT status FROM tasks WHERE id = $1 FOR UPDATE", state.task_id
                )
            # The task's trace (for the dashboard's Langfuse link) rides on the upsert: a
            # statement of its own on every write cost the traced worker ~1 % CPU per task.
            done = await connection.execute(_UPSERT_TASK, *_task_row(state), current_trace_id())
            if finishes and done == "INSERT 0 1" and not _terminal(before):
                metrics.TASKS_FINISHED.labels(state.status.value).inc()
            if state.subtasks:
                await connection.executemany(
                    _UPSERT_SUBTASK,
                    [_subtask_row(state.task_id, state.version, s) for s in state.subtasks],
                )
            if write.events:
                await connection.executemany(
                    _INSERT_EVENT,
                    [
                        (
                            state.task_id,
                            e.seq,
                            e.kind,
                            e.subtask_id,
                            e.status.value if e.status else None,
                            {"message": _text(e.message)} if e.message else {},
                            e.at,
                        )
                        for e in write.events
                    ],
                )


class StoreActivities:
    """Writes the workflow's state to Postgres; every write may be retried or reordered."""

    def __init__(self, *, pool: asyncpg.Pool, blobs: BlobStore) -> None:
        self.pool = pool
        self.blobs = blobs
        self.projection = ProjectionWriter(pool)

    @activity.defn(name="store_task")
    async def store_task(self, write: StoreWrite) -> None:
        """Upsert the task row, the changed subtask rows and the new events in one transaction.

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
