"""The usage report (`GET /usage`, `mahsm usage`): tokens and cost summed from Postgres."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class UsageGroup(StrEnum):
    """What a usage report sums by."""

    MODEL = "model"
    """The task's model (the first of its fallback chain)."""
    USER = "user"
    DAY = "day"
    """The UTC day the task was created."""
    TASK = "task"


class UsageRow(BaseModel):
    """The usage of one group: tasks, tokens and cost, as the task states sum them."""

    key: str | None = Field(description="the model, user, day (YYYY-MM-DD) or task id")
    tasks: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    estimate: UsageEstimate | None = Field(
        default=None, description="estimate against actual cost, for tasks that carried one"
    )
    calls: int = Field(default=0, description="LLM calls (tasks recorded before counting: 0)")


class UsageReport(BaseModel):
    """Usage grouped by one key, for the tasks created since `since`."""

    group_by: UsageGroup
    since: datetime | None
    scope: str = Field(description="'all users' for an admin key (or no auth), else the user")
    rows: list[UsageRow]
    total: UsageRow


class UsageEstimate(BaseModel):
    """How good the estimates were: the ended tasks of a group that carried one."""

    tasks: int = Field(description="ended tasks with an estimate (approval or options.estimate)")
    expected_cost_usd: float = Field(description="their estimates' expected cost, summed")
    low_cost_usd: float
    high_cost_usd: float
    actual_cost_usd: float = Field(description="what the estimated steps of those tasks cost")


UsageRow.model_rebuild()
