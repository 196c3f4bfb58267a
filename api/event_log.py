"""`GET /logs`: the task event log across tasks, newest first, filtered in Postgres.

A log event has no level of its own; it is derived from its kind and status so that a person
can look for trouble: `error` for a task or subtask that failed or timed out, `warning` for one
cancelled or blocked and for notes, `info` for everything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from mahsm.api.cursors import Cursor
from mahsm.api.dashboard_schemas import LogEntry, LogLevel, LogPage
from mahsm.api.read_model import QUERY_TIMEOUT_S, Where, guarded

_LEVEL_SQL = """CASE
    WHEN e.status IN ('failed', 'timed_out') THEN 'error'
    WHEN e.status IN ('cancelled', 'blocked') OR e.kind = 'note' THEN 'warning'
    ELSE 'info' END"""


@dataclass(frozen=True)
class LogFilter:
    """Filters of `GET /logs`; empty or None means no restriction."""

    user_id: str | None = None
    task_id: str | None = None
    kinds: list[str] = field(default_factory=list)
    levels: list[LogLevel] = field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None


async def list_log(
    pool: asyncpg.Pool,
    *,
    where: LogFilter,
    after: Cursor | None,
    limit: int,
) -> LogPage:
    """A page of log events, newest first, continuing after the position `after`."""
    found = Where()
    if where.user_id is not None:
        found.add("t.user_id = ?", where.user_id)
    if where.task_id is not None:
        found.add("e.task_id = ?", where.task_id)
    if where.kinds:
        found.add("e.kind = ANY(?::text[])", where.kinds)
    if where.levels:
        found.add(f"({_LEVEL_SQL}) = ANY(?::text[])", [level.value for level in where.levels])
    if where.since is not None:
        found.add("e.created_at >= ?", where.since)
    if where.until is not None:
        found.add("e.created_at < ?", where.until)
    if after is not None:
        found.before("e.created_at, e.task_id, e.seq", after.keyset())
    sql = (
        f"SELECT e.task_id, e.seq, e.kind, e.subtask_id, e.status, e.data, e.created_at,"
        f" {_LEVEL_SQL} AS level FROM task_events e JOIN tasks t ON t.id = e.task_id"
        f"{found.sql()}"
    )
    sql += f" ORDER BY e.created_at DESC, e.task_id DESC, e.seq DESC LIMIT {found.param(limit + 1)}"

    async def read() -> list[asyncpg.Record]:
        return list(await pool.fetch(sql, *found.params, timeout=QUERY_TIMEOUT_S))

    rows = await guarded(read)
    page = rows[:limit]
    last = page[-1] if len(rows) > limit else None
    return LogPage(
        events=[
            LogEntry(
                task_id=row["task_id"],
                seq=row["seq"],
                kind=row["kind"],
                level=LogLevel(row["level"]),
                subtask_id=row["subtask_id"],
                status=row["status"],
                message=(row["data"] or {}).get("message"),
                at=row["created_at"],
            )
            for row in page
        ],
        next_cursor=(
            Cursor(last["created_at"], last["task_id"], last["seq"]).encode() if last else None
        ),
    )
