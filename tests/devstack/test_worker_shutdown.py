"""SIGTERM of a worker lets in-flight activities finish (MAHSM_WORKER_SHUTDOWN_GRACE_S)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.chaos.conftest import ChaosStack
from tests.chaos.workload import (
    assert_right_result,
    count,
    final_states,
    repeated_completions,
    scenario,
    start_tasks,
    wait_for_calls,
)

pytestmark = pytest.mark.timeout(240)

TASKS = 3
LATENCY_MS = 3000


@pytest_asyncio.fixture(loop_scope="session")
async def deployment() -> AsyncIterator[ChaosStack]:
    root = Path(tempfile.mkdtemp(prefix="mahsm-shutdown-"))
    root.chmod(0o711)  # Postgres runs as an unprivileged user when we are root
    stack = ChaosStack(root)
    try:
        yield stack
    finally:
        try:
            stack.close()
        finally:
            shutil.rmtree(root, ignore_errors=True)


async def test_sigterm_lets_in_flight_llm_calls_finish_and_none_runs_again(
    deployment: ChaosStack,
) -> None:
    stack = deployment
    stack.worker_env = {"MAHSM_WORKER_SHUTDOWN_GRACE_S": "20"}
    await stack.start_servers(scenario(latency_ms=LATENCY_MS, jitter_ms=0, tools=False))
    worker = await stack.start_worker()
    handles = await start_tasks(await stack.client(), stack.prefix, TASKS)
    await wait_for_calls(
        stack.calls,
        lambda e: count(e, "start", "plan") == TASKS,
        timeout_s=60,
        what="every task's planning call in flight",
    )
    assert worker.pid is not None
    os.killpg(worker.pid, signal.SIGTERM)
    stopped_at = time.monotonic()
    while worker.running:
        assert time.monotonic() - stopped_at < 40, f"worker still running.{worker.tail()}"
        await asyncio.sleep(0.1)

    # The calls in flight at the SIGTERM ran to their end before the worker exited.
    assert worker.returncode == 0, worker.tail()
    assert count(stack.calls(), "done", "plan") == TASKS, stack.calls()

    await stack.start_worker()
    for state in await final_states(handles, timeout_s=120):
        assert_right_result(state)
    assert repeated_completions(stack.calls()) == {}, "a finished LLM call ran again"
