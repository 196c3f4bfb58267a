"""Restart Postgres mid-run: afterwards no task or subtask row is missing or stale."""

from __future__ import annotations

import pytest

from mahsm.contracts.task import TaskState
from mahsm.db.pool import create_pool
from tests.chaos.conftest import ChaosStack
from tests.chaos.workload import (
    SHORT_TIMEOUTS,
    assert_right_result,
    final_states,
    scenario,
    start_tasks,
    wait_mid_dag,
)

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

TASKS = 20


def subtask_expected(state: TaskState) -> dict[str, dict[str, object]]:
    return {
        item.subtask.id: {
            "status": item.result.status.value,
            "output": item.result.output,
            "error": item.result.error,
            "agent": item.result.agent,
            "pool": item.result.pool,
            "attempts": item.result.attempts,
            "started_at": item.result.started_at,
            "finished_at": item.result.finished_at,
            "usage": item.result.usage.model_dump(),
        }
        for item in state.subtasks
    }


async def test_postgres_killed_and_restarted_leaves_no_row_missing_or_stale(
    chaos_stack: ChaosStack,
) -> None:
    stack = chaos_stack
    stack.worker_env = SHORT_TIMEOUTS
    await stack.start_servers(scenario(latency_ms=300, jitter_ms=200))
    await stack.start_worker()
    handles = await start_tasks(await stack.client(), stack.prefix, TASKS)
    await wait_mid_dag(stack.calls, TASKS)
    # Down for a few seconds, while agents keep finishing steps and the store keeps failing.
    await stack.restart_postgres(kill=True, down_s=3.0)

    states = await final_states(handles, timeout_s=180)
    for state in states:
        assert_right_result(state)

    pool = await create_pool(stack.database_url, max_size=2)
    try:
        for state in states:
            row = await pool.fetchrow("SELECT * FROM tasks WHERE id = $1", state.task_id)
            assert row is not None, f"task row of {state.task_id} is missing"
            task = {k: row[k] for k in ("status", "result", "error", "version", "usage")}
            assert task == {
                "status": state.status.value,
                "result": state.result,
                "error": state.error,
                "version": state.version,
                "usage": state.usage.model_dump(),
            }, state.task_id
            assert row["updated_at"] == state.updated_at, state.task_id
            rows = await pool.fetch("SELECT * FROM subtasks WHERE task_id = $1", state.task_id)
            stored = {r["id"]: {k: r[k] for k in subtask_expected(state)[r["id"]]} for r in rows}
            assert stored == subtask_expected(state), state.task_id
            seqs = [
                r["seq"]
                for r in await pool.fetch(
                    "SELECT seq FROM task_events WHERE task_id = $1 ORDER BY seq", state.task_id
                )
            ]
            assert seqs == list(range(1, len(seqs) + 1)), f"{state.task_id}: events missing"
            last = await pool.fetchval(
                "SELECT status FROM task_events WHERE task_id = $1 AND kind = 'task_status'"
                " ORDER BY seq DESC LIMIT 1",
                state.task_id,
            )
            assert last == state.status.value, state.task_id
    finally:
        await pool.close()
