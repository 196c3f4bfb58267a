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


def langfuse_trace_url(trace_id: str | None) -> str | None:
    """Langfuse's link to a trace by id (it finds the project), if Langfuse is configured."""
    host = TracingEnv().langfuse_host
    if not host or not trace_id:
        return None
    return f"{host.rstrip('/')}/trace/{trace_id}"


async def task_links(pool: asyncpg.Pool, task_id: str) -> ExternalLinks:
    """The task's links, from its Postgres projection (empty while it is not written yet)."""

    async def read() -> tuple[str | None, list[asyncpg.Record]]:
        trace_id = await pool.fetchval(
            "SELECT trace_id FROM tasks WHERE id = $1", task_id, timeout=QUERY_TIMEOUT_S
        )
        children = await pool.fetch(
            "SELECT DISTINCT subtask_id FROM task_events WHERE task_id = $1 AND kind = 'note'"
            " AND subtask_id IS NOT NULL AND data->>'message' LIKE $2",
            task_id,
            CHILD_WORKFLOW_NOTE,
            timeout=QUERY_TIMEOUT_S,
        )
        return trace_id, list(children)

    trace_id, children = await guarded(read)
    return ExternalLinks(
        trace_id=trace_id,
        trace_url=langfuse_trace_url(trace_id),
        subtask_workflows={
            row["subtask_id"]: f"{task_id}.{row['subtask_id']}"
            for row in sorted(children, key=lambda r: str(r["subtask_id"]))
        },
    )
