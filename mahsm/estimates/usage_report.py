"""The estimate-against-actual columns of `GET /usage`, summed over ended estimated tasks."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from mahsm.contracts.usage import UsageEstimate

_ENDED = "WHERE jsonb_typeof(estimate->'actual') = 'object'"
SQL_COLUMNS = (
    f" count(*) FILTER ({_ENDED}) AS estimated_tasks,"
    " coalesce(sum((estimate->'total'->'cost_usd'->>'expected')::float8)"
    f" FILTER ({_ENDED}), 0) AS estimated_cost,"
    f" coalesce(sum((estimate->'total'->'cost_usd'->>'low')::float8) FILTER ({_ENDED}), 0)"
    " AS estimated_low,"
    f" coalesce(sum((estimate->'total'->'cost_usd'->>'high')::float8) FILTER ({_ENDED}), 0)"
    " AS estimated_high,"
    f" coalesce(sum((estimate->'actual'->>'cost_usd')::float8) FILTER ({_ENDED}), 0)"
    " AS estimated_actual"
)
"""Columns to add to a `SELECT ... FROM tasks GROUP BY ...` (each starts with a space)."""


def usage_estimate(row: asyncpg.Record) -> UsageEstimate | None:
    """The estimate of one group's row; None when none of its ended tasks carried one."""
    if not row["estimated_tasks"]:
        return None
    return UsageEstimate(
        tasks=row["estimated_tasks"],
        expected_cost_usd=row["estimated_cost"],
        low_cost_usd=row["estimated_low"],
        high_cost_usd=row["estimated_high"],
        actual_cost_usd=row["estimated_actual"],
    )


def total_estimate(found: Sequence[UsageEstimate | None]) -> UsageEstimate | None:
    """The estimates of every group added up."""
    present = [item for item in found if item is not None]
    if not present:
        return None
    return UsageEstimate(
        tasks=sum(e.tasks for e in present),
        expected_cost_usd=sum(e.expected_cost_usd for e in present),
        low_cost_usd=sum(e.low_cost_usd for e in present),
        high_cost_usd=sum(e.high_cost_usd for e in present),
        actual_cost_usd=sum(e.actual_cost_usd for e in present),
    )
