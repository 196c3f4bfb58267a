"""SIGKILL the Temporal dev server mid-run and restart it on its SQLite file."""

from __future__ import annotations

import asyncio

import pytest

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


async def test_temporal_killed_and_restarted_on_its_file_tasks_resume_and_complete(
    chaos_stack: ChaosStack,
) -> None:
    stack = chaos_stack
    stack.worker_env = SHORT_TIMEOUTS
    await stack.start_servers(scenario(latency_ms=300, jitter_ms=200))
    worker = await stack.start_worker()
    handles = await start_tasks(await stack.client(), stack.prefix, TASKS)
    await wait_mid_dag(stack.calls, TASKS)

    stack.temporal.kill()
    await asyncio.sleep(2)  # the worker and the client see the server gone
    assert worker.running, f"the worker died with the server.{worker.tail()}"
    await stack.restart_temporal(kill=False)

    states = await final_states(handles, timeout_s=180)
    for state in states:
        assert_right_result(state)
    assert worker.running, "the same worker process carried on after the restart"
