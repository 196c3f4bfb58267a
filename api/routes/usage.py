"""`GET /usage`: tokens and cost summed over the tasks' Postgres projection.

The figures are the task states' own `usage` (the projection stores each task's state), so a
report and the tasks it sums always agree. A caller sees their own tasks; a user named in
`MAHSM_ADMIN_USERS` (or any caller when authentication is off) sees everyone's.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from mahsm.api.auth import CallerDep
from mahsm.api.deps import DbPoolDep, SettingsDep
from mahsm.api.read_model import guarded
from mahsm.api.routes.tasks import IsoDateTime, _utc, error_responses
from mahsm.contracts.usage import UsageGroup, UsageReport, UsageRow
from mahsm.estimates import usage_report

router = APIRouter(tags=["usage"])

# Group keys are chosen from this table, never from text the caller sends.
_KEYS = {
    UsageGroup.MODEL: "NULLIF(model, '')",
    UsageGroup.USER: "user_id",
    UsageGroup.DAY: "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    UsageGroup.TASK: "id",
}


@router.get("/usage", response_model=UsageReport, responses=error_responses(401, 422, 503))
async def usage(
    caller: CallerDep,
    pool: DbPoolDep,
    settings: SettingsDep,
    group_by: Annotated[
        UsageGroup, Query(description="sum by model, user, day (UTC) or task")
    ] = UsageGroup.MODEL,
    since: Annotated[
        IsoDateTime | None,
        Query(description="only tasks created at or after this ISO 8601 time, e.g. 2026-01-31"),
    ] = None,
) -> UsageReport:
    """LLM calls, tokens and cost summed by `group_by`, over the caller's tasks (all for admins)."""
    since = _utc(since, "since")  # a date or time without an offset is UTC
    sees_all = caller.user is None or caller.user in settings.admin_users
    owner = None if sees_all else caller.user
    key = _KEYS[group_by]
    rows = await guarded(
        lambda: pool.fetch(
            f"SELECT {key} AS key, count(*) AS tasks,"  # noqa: S608 - key from _KEYS only
            " coalesce(sum((usage->>'input_tokens')::bigint), 0) AS input_tokens,"
            " coalesce(sum((usage->>'output_tokens')::bigint), 0) AS output_tokens,"
            " coalesce(sum((usage->>'cost_usd')::float8), 0) AS cost_usd,"
            " coalesce(sum((usage->>'calls')::bigint), 0) AS calls,"
            f"{usage_report.SQL_COLUMNS}"
            " FROM tasks WHERE ($1::timestamptz IS NULL OR created_at >= $1)"
            " AND ($2::text IS NULL OR user_id = $2)"
            f" GROUP BY {key} ORDER BY {key} NULLS LAST",
            since,
            owner,
        )
    )
    found = [
        UsageRow(
            key=row["key"],
            tasks=row["tasks"],
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            cost_usd=row["cost_usd"],
            calls=row["calls"],
            estimate=usage_report.usage_estimate(row),
        )
        for row in rows
    ]
    total = UsageRow(
        key=None,
        tasks=sum(r.tasks for r in found),
        input_tokens=sum(r.input_tokens for r in found),
        output_tokens=sum(r.output_tokens for r in found),
        cost_usd=sum(r.cost_usd for r in found),
        calls=sum(r.calls for r in found),
        estimate=usage_report.total_estimate([r.estimate for r in found]),
    )
    scope = "all users" if sees_all else str(caller.user)
    return UsageReport(group_by=group_by, since=since, scope=scope, rows=found, total=total)
