"""What finished work cost: the one read of Postgres that estimates learn from.

Per capability set and model, the 10th/50th/90th percentiles of the tokens, LLM calls and
duration of completed agent subtasks; per model, of the task's own calls (planning,
aggregation: the task's usage less its subtasks', and the time before the first subtask
started plus after the last one finished; the input tokens also less the subtasks' outputs,
which the aggregation reads and an estimate adds back for its own plan). Both over the most
recent `HISTORY_ROWS` rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from mahsm.contracts.estimate import Range
from mahsm.estimates.defaults import HISTORY_ROWS

ANY = "*"
"""The key of a group over every capability set (or every model)."""

_SUBTASKS = """
WITH recent AS (
    SELECT array_to_string(ARRAY(SELECT unnest(s.required_capabilities) ORDER BY 1), '+')
               AS caps,
           coalesce(NULLIF(s.model, ''), t.model) AS model,
           (s.usage->>'input_tokens')::float8 AS input_tokens,
           (s.usage->>'output_tokens')::float8 AS output_tokens,
           s.llm_calls::float8 AS llm_calls,
           extract(epoch FROM s.finished_at - s.started_at)::float8 AS seconds
    FROM subtasks s JOIN tasks t ON t.id = s.task_id
    WHERE s.status = 'completed' AND s.kind = 'agent'
      AND s.started_at IS NOT NULL AND s.finished_at IS NOT NULL
    ORDER BY s.finished_at DESC
    LIMIT $1
)
SELECT CASE WHEN GROUPING(caps) = 1 THEN '*' ELSE caps END AS caps,
       CASE WHEN GROUPING(model) = 1 THEN '*' ELSE model END AS model,
       count(*) AS samples,
       percentile_cont(ARRAY[0.1, 0.5, 0.9]) WITHIN GROUP (ORDER BY input_tokens) AS input_tokens,
       percentile_cont(ARRAY[0.1, 0.5, 0.9]) WITHIN GROUP (ORDER BY output_tokens)
           AS output_tokens,
       percentile_cont(ARRAY[0.1, 0.5, 0.9]) WITHIN GROUP (ORDER BY llm_calls) AS llm_calls,
       percentile_cont(ARRAY[0.1, 0.5, 0.9]) WITHIN GROUP (ORDER BY seconds) AS seconds
FROM recent
GROUP BY GROUPING SETS ((caps, model), (caps), (model))
"""

# Tasks that ran a plan (no pipeline), did not wait for approval, and completed; `planned`
# when their log says they planned, `aggregated` when they had more than one subtask.
_TASKS = """
WITH recent AS (
    SELECT t.model,
           EXISTS (SELECT 1 FROM task_events e WHERE e.task_id = t.id
                   AND e.kind = 'task_status' AND e.status = 'planning') AS planned,
           s.n > 1 AS aggregated,
           -- the aggregation reads every subtask's output: that part is added per plan
           (t.usage->>'input_tokens')::float8 - s.input_tokens
               - CASE WHEN s.n > 1 THEN s.output_tokens ELSE 0 END AS input_tokens,
           (t.usage->>'output_tokens')::float8 - s.output_tokens AS output_tokens,
           extract(epoch FROM (s.first_start - t.created_at) + (t.updated_at - s.last_end))::float8
               AS seconds
    FROM tasks t, LATERAL (
        SELECT count(*) AS n,
               coalesce(sum((usage->>'input_tokens')::float8), 0) AS input_tokens,
               coalesce(sum((usage->>'output_tokens')::float8), 0) AS output_tokens,
               min(started_at) AS first_start, max(finished_at) AS last_end
        FROM subtasks WHERE task_id = t.id
    ) s
    WHERE t.status = 'completed' AND t.pipeline IS NULL AND s.n > 0
      AND s.first_start IS NOT NULL AND s.last_end IS NOT NULL
      AND coalesce(t.options->>'require_approval', 'false') <> 'true'
    ORDER BY t.created_at DESC
    LIMIT $1
)
SELECT CASE WHEN GROUPING(model) = 1 THEN '*' ELSE model END AS model, planned, aggregated,
       count(*) AS samples,
       percentile_cont(ARRAY[0.1, 0.5, 0.9]) WITHIN GROUP (ORDER BY input_tokens) AS input_tokens,
       percentile_cont(ARRAY[0.1, 0.5, 0.9]) WITHIN GROUP (ORDER BY output_tokens)
           AS output_tokens,
       percentile_cont(ARRAY[0.1, 0.5, 0.9]) WITHIN GROUP (ORDER BY seconds) AS seconds
FROM recent
GROUP BY GROUPING SETS ((model, planned, aggregated), (planned, aggregated))
"""


@dataclass(frozen=True)
class Observed:
    """Percentiles (10th, 50th, 90th) of finished work of one group; calls may be unknown."""

    samples: int
    input_tokens: Range
    output_tokens: Range
    seconds: Range
    llm_calls: Range | None = None


@dataclass
class History:
    """Observed figures by (capability set, model) and by (model, planned, aggregated).

    A capability set is its sorted names joined by `+`; `ANY` stands for every set or model.
    """

    subtasks: dict[tuple[str, str], Observed] = field(default_factory=dict)
    tasks: dict[tuple[str, bool, bool], Observed] = field(default_factory=dict)


def capability_key(capabilities: Sequence[str]) -> str:
    """The key of a capability set: sorted, joined by `+` (as the history query builds it)."""
    return "+".join(sorted(set(capabilities)))


def _range(values: Sequence[float] | None) -> Range | None:
    if values is None or any(v is None for v in values):
        return None
    low, expected, high = (max(0.0, float(v)) for v in values)
    return Range(low=low, expected=expected, high=high)


def _observed(row: asyncpg.Record, *, calls: bool) -> Observed | None:
    tokens_in, tokens_out = _range(row["input_tokens"]), _range(row["output_tokens"])
    seconds = _range(row["seconds"])
    if tokens_in is None or tokens_out is None or seconds is None:
        return None
    return Observed(
        samples=row["samples"],
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        seconds=seconds,
        llm_calls=_range(row["llm_calls"]) if calls else None,
    )


async def load_history(pool: asyncpg.Pool, *, rows: int = HISTORY_ROWS) -> History:
    """Read the figures of the most recent `rows` finished subtasks and tasks."""
    history = History()
    async with pool.acquire() as connection:
        for row in await connection.fetch(_SUBTASKS, rows):
            found = _observed(row, calls=True)
            if found is not None:
                history.subtasks[(row["caps"], row["model"])] = found
        for row in await connection.fetch(_TASKS, rows):
            found = _observed(row, calls=False)
            if found is not None:
                history.tasks[(row["model"], row["planned"], row["aggregated"])] = found
    return history
