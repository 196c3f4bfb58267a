"""What a task spent on the steps it estimated, next to the estimate, once it ended."""

from __future__ import annotations

from datetime import datetime

from mahsm.contracts.estimate import EstimateActual, PlanEstimate
from mahsm.contracts.task import TaskState, TaskStatus


def _error(actual: float, expected: float) -> float | None:
    return round(actual / expected - 1, 4) if expected > 0 else None


def with_actuals(state: TaskState, now: datetime) -> PlanEstimate | None:
    """`state.estimate` with `actual` filled from the ended task (None without an estimate).

    Usage counts from the estimate on (`spent_before`, the planning, is left out); the
    duration runs from the first subtask's start to `now` (the end, aggregation included).
    Calls are the agents' own counts plus the aggregation; None when a subtask that ran does
    not say how many calls it made (it failed).
    """
    estimate = state.estimate
    if estimate is None:
        return None
    spent = state.usage - estimate.spent_before
    ran = [item for item in state.subtasks if item.result.started_at is not None]
    starts = [item.result.started_at for item in ran if item.result.started_at is not None]
    duration = (now - min(starts)).total_seconds() if starts else 0.0
    calls: int | None = None
    if all(item.result.llm_calls is not None for item in ran):
        calls = sum(item.result.llm_calls or 0 for item in ran)
        if len(state.subtasks) > 1 and state.status == TaskStatus.COMPLETED:
            calls += 1  # the aggregation
    expected = estimate.total
    tokens = expected.input_tokens.expected + expected.output_tokens.expected
    actual = EstimateActual(
        llm_calls=calls,
        input_tokens=spent.input_tokens,
        output_tokens=spent.output_tokens,
        cost_usd=spent.cost_usd,
        duration_s=round(duration, 3),
        cost_error=_error(spent.cost_usd, expected.cost_usd.expected),
        tokens_error=_error(spent.total_tokens, tokens),
        duration_error=_error(duration, expected.duration_s.expected),
    )
    return estimate.model_copy(update={"actual": actual})
