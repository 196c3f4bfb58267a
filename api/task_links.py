"""Links of a task's detail: its trace in Langfuse, and its subtasks' child workflows.

- The trace id is recorded by the task projection from its activity's trace context (tracing
  on); with `LANGFUSE_HOST` set in the API's environment it becomes a Langfuse URL.
- An agent that continues in a child workflow (a long task history; `GraphRunner`) leaves a
  note event on its subtask; that child's workflow id is `<task id>.<subtask id>`, which the
  dashboard links to in the Temporal Web UI.
"""

from __future__ import annotations

import asyncpg

from mahsm.api.read_model import QUERY_TIMEOUT_S, guarded
from mahsm.api.schemas import ExternalLinks
from mahsm.tracing import TracingEnv

CHILD_WORKFLOW_NOTE = "agent continues in a child workflow%"
"""The note `GraphRunner` records on a subtask whose agent moves to a child workflow."""


_LINKS = """
SELECT trace_id, ARRAY(
    SELECT DISTINCT subtask_id FROM task_events WHERE task_id = $1 AND kind = 'note'
    AND subtask_id IS NOT NULL AND data->>'message' LIKE $2
) AS children FROM tasks WHERE id = $1
"""


def langfuse_trace_url(trace_id: str | None) -> str | None:
    """Langfuse's link to a trace by id (it finds the project), if Langfuse is configured."""
    if not trace_id:  # the common case (tracing off) reads no settings: this runs per GET
        return None
    host = TracingEnv().langfuse_host
    if not host:
        return None
    return f"{host.rstrip('/')}/trace/{trace_id}"


async def task_links(pool: asyncpg.Pool, task_id: str) -> ExternalLinks:
    """The task's links, from its Postgres projection (empty while it is not written yet)."""

    async def read() -> asyncpg.Record | None:  # one round trip: this runs on every GET
        return await pool.fetchrow(_LINKS, task_id, CHILD_WORKFLOW_NOTE, timeout=QUERY_TIMEOUT_S)

    row = await guarded(read)
    trace_id: str | None = row["trace_id"] if row is not None else None
    children: list[str] = list(row["children"]) if row is not None else []
    return ExternalLinks(
        trace_id=trace_id,
        trace_url=langfuse_trace_url(trace_id),
        subtask_workflows={child: f"{task_id}.{child}" for child in sorted(children, key=str)},
    )
