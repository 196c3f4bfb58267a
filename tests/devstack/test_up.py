"""`mahsm up` end to end: the real command, real servers, free ports, a throwaway data dir."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import uuid

import asyncpg
import httpx
import psutil
import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from mahsm.devstack.process import port_is_free
from tests.devstack.up_harness import (
    WORKER_PRESENT,
    Stack,
    alive,
    child_pids,
    ensure_stopped,
    stop_and_assert_clean,
    wait_for,
    wait_healthy,
)


async def _record_state(stack: Stack, workflow_id: str) -> None:
    connection = await asyncpg.connect(stack.database_url)
    try:
        await connection.execute(
            "INSERT INTO tasks (id, description, status, created_at, updated_at)"
            " VALUES ($1, 'survives a restart', 'pending', now(), now())",
            workflow_id,
        )
    finally:
        await connection.close()
    client = await Client.connect(stack.temporal)
    # No worker polls this queue: the execution simply stays open in Temporal's history.
    await client.start_workflow("NoSuchWorkflow", id=workflow_id, task_queue="nobody-polls")


async def _assert_state(stack: Stack, workflow_id: str) -> None:
    connection = await asyncpg.connect(stack.database_url)
    try:
        row = await connection.fetchrow("SELECT description FROM tasks WHERE id = $1", workflow_id)
    finally:
        await connection.close()
    assert row is not None and row["description"] == "survives a restart"
    client = await Client.connect(stack.temporal)
    description = await client.get_workflow_handle(workflow_id).describe()
    assert description.workflow_type == "NoSuchWorkflow"
    assert description.status == WorkflowExecutionStatus.RUNNING


@pytest.mark.skipif(not WORKER_PRESENT, reason="`python -m mahsm.workers` does not exist yet")
def test_up_serves_stops_cleanly_and_keeps_state_across_restarts(stack: Stack) -> None:
    process = stack.start()
    try:
        wait_healthy(stack, process)
        output = stack.output()
        assert f"{stack.api}/docs" in output
        ui = httpx.get(f"http://127.0.0.1:{stack.ports['MAHSM_TEMPORAL_UI_PORT']}", timeout=5)
        assert ui.status_code == 200 and "<html" in ui.text.lower()
        assert (stack.data_dir / "temporal.db").is_file()
        assert (stack.data_dir / "postgres" / "PG_VERSION").is_file()
        assert {"temporal.log", "postgres.log", "worker.log", "api.log"} <= {
            p.name for p in (stack.data_dir / "logs").iterdir()
        }

        second = stack.run("up")
        assert second.returncode != 0
        assert f"MAHSM is already running (pid {process.pid})" in " ".join(second.stderr.split())

        workflow_id = f"persist-{uuid.uuid4().hex[:8]}"
        asyncio.run(_record_state(stack, workflow_id))
        children = child_pids(stack)
        assert set(children) == {"temporal", "postgres", "worker", "api"}

        # A worker that dies is restarted, and becomes ready again.
        os.killpg(children["worker"], signal.SIGKILL)
        wait_for(lambda: child_pids(stack)["worker"] != children["worker"], "worker restart")
        wait_for((stack.data_dir / "run" / "worker.ready").exists, "restarted worker ready")
        assert "worker exited (code -9); restarting" in " ".join(stack.output().split())
        stop_and_assert_clean(stack, process, child_pids(stack))

        process = stack.start()
        wait_healthy(stack, process)
        asyncio.run(_assert_state(stack, workflow_id))

        # `mahsm up` killed outright leaves its children running; the next one stops them.
        orphans = child_pids(stack)
        process.kill()
        process.wait()
        assert all(psutil.pid_exists(pid) for pid in orphans.values())
        process = stack.start()
        wait_healthy(stack, process)
        assert "Stopped processes left by a killed `mahsm up`" in stack.output()
        assert not any(alive(pid) for pid in orphans.values())
        asyncio.run(_assert_state(stack, workflow_id))
        stop_and_assert_clean(stack, process, child_pids(stack), signal.SIGTERM)
    finally:
        ensure_stopped(process)


@pytest.mark.skipif(not WORKER_PRESENT, reason="`python -m mahsm.workers` does not exist yet")
def test_up_uses_external_temporal_and_postgres_when_configured(
    stack: Stack, temporal_env: WorkflowEnvironment, database_url: str
) -> None:
    address = temporal_env.client.service_client.config.target_host
    stack.env.update(MAHSM_TEMPORAL_ADDRESS=address, MAHSM_DATABASE_URL=database_url)
    process = stack.start()
    try:
        wait_healthy(stack, process)
        children = child_pids(stack)
        assert set(children) == {"worker", "api"}
        assert not (stack.data_dir / "temporal.db").exists()
        assert not (stack.data_dir / "postgres").exists()
        assert f"Using Temporal at {address}" in stack.output()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, stack.output()
        for pid in children.values():
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
        port = stack.ports["MAHSM_API_PORT"]
        assert port_is_free("127.0.0.1", port)
    finally:
        ensure_stopped(process)
    # The external servers are not ours to stop.
    assert not port_is_free("127.0.0.1", int(address.rsplit(":", 1)[1]))


def test_invalid_configuration_exits_2_naming_the_variable(stack: Stack) -> None:
    stack.env["MAHSM_API_PORT"] = "not-a-port"
    result = stack.run("up")
    assert result.returncode == 2
    assert "MAHSM_API_PORT" in result.stderr and "Fix the variable" in result.stderr


def test_a_taken_port_is_reported_before_anything_starts(stack: Stack) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", stack.ports["MAHSM_TEMPORAL_UI_PORT"]))
        squatter.listen()
        result = stack.run("up")
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    port = stack.ports["MAHSM_TEMPORAL_UI_PORT"]
    assert f"port {port} (Temporal UI) is already in use" in message
    assert "MAHSM_TEMPORAL_UI_PORT" in message
    assert not (stack.data_dir / "temporal.db").exists()
