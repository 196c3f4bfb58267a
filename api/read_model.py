"""Reads of the Postgres projection that `TaskWorkflow` writes (tasks, subtasks, blobs).

Every function raises `BackendUnavailable("database", ...)` when Postgres cannot answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from mahsm.api.cursors import Cursor
from mahsm.api.deps import BackendUnavailable
from mahsm.api.schemas import SubtaskView, TaskDetail, TaskPage, TaskView
from mahsm.contracts.estimate import PlanEstimate
from mahsm.contracts.task import Plan, PlanRevision, TaskStatus, Usage
from mahsm.logging import redact_text

_T = TypeVar("_T")
DATABASE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
QUERY_TIMEOUT_S = 10.0

_TASK_COLUMNS = (
    "id, user_id, description, status, model, plan, result, result_ref, error, usage,"
    " created_at, updated_at, version, pipeline, outputs, revisions, estimate"
)


async def guarded(action: Callable[[], Awaitable[_T]]) -> _T:
    """Run a read or write; database failures become 503 `database_unavailable`."""
    try:
        return await action()
    except DATABASE_ERRORS as error:
        raise BackendUnavailable("database", redact_text(str(error)) or repr(error)) from error


def _plan(raw: Any) -> Plan | None:
    return Plan.model_validate(raw) if raw else None


def _task_view(row: asyncpg.Record) -> TaskView:
    return TaskView(
        id=row["id"],
        user_id=row["user_id"],
        description=row["description"],
        status=TaskStatus(row["status"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        plan=_plan(row["plan"]),
        result=row["result"],
        error=row["error"],
        usage=Usage.model_validate(row["usage"] or {}),
        model=row["model"] or None,
        pipeline=row["pipeline"],
        outputs=row["outputs"],
        revisions=[PlanRevision.model_validate(r) for r in row["revisions"] or []],
        estimate=PlanEstimate.model_validate(row["estimate"]) if row["estimate"] else None,
    )


def _subtask_view(row: asyncpg.Record) -> SubtaskView:
    return SubtaskView(
        id=row["id"],
        description=row["description"],
        required_capabilities=list(row["required_capabilities"]),
        depends_on=list(row["depends_on"]),
        status=row["status"],
        output=row["output"],
        error=row["error"],
        agent=row["agent"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        attempts=row["attempts"],
        usage=Usage.model_validate(row["usage"] or {}),
        waiting_for=row["waiting_for"],
        kind=row["kind"],
        value=row["value"],
        model=row["model"],
        detections=row["detections"] or {},
        llm_calls=row["llm_calls"],
    )


@dataclass(frozen=True)
class TaskSnapshot:
    """A task's detail, with the claim checks of large outputs still unresolved.

    `version` is the task's `TaskState.version`: it grows with every change, so of two
    snapshots of one task the one with the higher version is the newer.
    """

    detail: TaskDetail
    result_ref: str | None
    output_refs: dict[str, str]
    version: int = 0


async def read_task_row(pool: asyncpg.Pool, task_id: str) -> asyncpg.Record | None:
    """The task's row alone, or None when none exists (yet): enough to tell if it has ended.

    `GET /tasks/{id}` of a running task reads only this (the workflow's `state` query has the
    rest); `load_task(row=...)` completes it with the subtasks when the row is what is shown.
    """

    async def read() -> asyncpg.Record | None:
        return await pool.fetchrow(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE id = $1", task_id, timeout=QUERY_TIMEOUT_S
        )

    return await guarded(read)


async def load_task(
    pool: asyncpg.Pool, task_id: str, *, row: asyncpg.Record | None = None
) -> TaskSnapshot | None:
    """The task and its subtasks in plan order, or None when no row exists (yet).

    Args:
        pool: The database.
        task_id: The task.
        row: The task's row when it was read already (`read_task_row`): only the subtasks
            are read then.
    """

    async def read() -> TaskSnapshot | None:
        async with pool.acquire() as connection:
            task_row = row or await connection.fetchrow(
                f"SELECT {_TASK_COLUMNS} FROM tasks WHERE id = $1",
                task_id,
                timeout=QUERY_TIMEOUT_S,
            )
            if task_row is None:
                return None
            rows = await connection.fetch(
                "SELECT * FROM subtasks WHERE task_id = $1", task_id, timeout=QUERY_TIMEOUT_S
            )
        task = _task_view(task_row)
        order = {s.id: i for i, s in enumerate(task.plan.subtasks)} if task.plan else {}
        rows = sorted(rows, key=lambda r: (order.get(r["id"], len(order)), r["id"]))
        return TaskSnapshot(
            detail=TaskDetail(task=task, subtask_results=[_subtask_view(r) for r in rows]),
            result_ref=(task_row["result_ref"] or {}).get("blob_id"),
            output_refs={r["id"]: r["output_ref"]["blob_id"] for r in rows if r["output_ref"]},
            version=task_row["version"],
        )

    return await guarded(read)


async def read_blob_text(pool: asyncpg.Pool, blob_id: str) -> str | None:
    """The text of a claim-checked value, or None when the blob is missing."""

    async def read() -> str | None:
        content = await pool.fetchval(
            "SELECT content FROM blobs WHERE id = $1", blob_id, timeout=QUERY_TIMEOUT_S
        )
        return None if content is None else bytes(content).decode("utf-8", errors="replace")

    return await guarded(read)


async def resolve_blobs(pool: asyncpg.Pool, snapshot: TaskSnapshot) -> TaskDetail:
    """The detail with large results and outputs read back from the blob table."""
    detail = snapshot.detail
    if snapshot.result_ref is None and not snapshot.output_refs:
        return detail
    task = detail.task
    if snapshot.result_ref is not None and task.result is None:
        task = task.model_copy(update={"result": await read_blob_text(pool, snapshot.result_ref)})
    subtasks = []
    for item in detail.subtask_results:
        ref = snapshot.output_refs.get(item.id)
        if ref is not None and item.output is None:
            item = item.model_copy(update={"output": await read_blob_text(pool, ref)})
        subtasks.append(item)
    return TaskDetail(task=task, subtask_results=subtasks)


# Pagination ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskFilter:
    """Filters of `GET /tasks`; None means no restriction."""

    user_id: str | None = None
    statuses: Sequence[TaskStatus] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    text: str | None = None


def _like(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its wildcards taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class Where:
    """A WHERE clause built from `?` placeholders, numbered `$1, $2, ...` as asyncpg wants."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.params: list[object] = []

    def param(self, value: object) -> str:
        """Add a parameter; returns its placeholder."""
        self.params.append(value)
        return f"${len(self.params)}"

    def add(self, clause: str, value: object) -> None:
        """Add `clause`; every `?` in it is `value`."""
        self.clauses.append(clause.replace("?", self.param(value)))

    def before(self, columns: str, position: Sequence[object]) -> None:
        """Rows ordered (descending) after the keyset `position` of `columns`."""
        placeholders = ", ".join(self.param(value) for value in position)
        self.clauses.append(f"({columns}) < ({placeholders})")

    def sql(self) -> str:
        """` WHERE ...`, or nothing when no clause was added."""
        return " WHERE " + " AND ".join(self.clauses) if self.clauses else ""


async def list_tasks(
    pool: asyncpg.Pool, *, where: TaskFilter, after: Cursor | None, limit: int
) -> TaskPage:
    """A page of tasks, newest first, continuing after the position `after` (a cursor's)."""
    found = Where()
    if where.user_id is not None:
        found.add("user_id = ?", where.user_id)
    if where.statuses:
        found.add("status = ANY(?::text[])", [s.value for s in where.statuses])
    if where.created_after is not None:
        found.add("created_at >= ?", where.created_after)
    if where.created_before is not None:
        found.add("created_at < ?", where.created_before)
    if where.text:
        found.add("(description ILIKE ? OR id ILIKE ?)", _like(where.text))
    if after is not None:
        found.before("created_at, id", after.keyset())
    sql = f"SELECT {_TASK_COLUMNS} FROM tasks{found.sql()}"
    sql += f" ORDER BY created_at DESC, id DESC LIMIT {found.param(limit + 1)}"

    async def read() -> list[asyncpg.Record]:
        return list(await pool.fetch(sql, *found.params, timeout=QUERY_TIMEOUT_S))

    rows = await guarded(read)
    page = rows[:limit]
    more = len(rows) > limit
    next_cursor = Cursor(page[-1]["created_at"], page[-1]["id"]).encode() if more else None
    return TaskPage(tasks=[_task_view(r) for r in page], next_cursor=next_cursor)
