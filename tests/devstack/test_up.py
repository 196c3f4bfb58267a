"""`mahsm up` end to end: the real command, real servers, free ports, a throwaway data dir."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from mahsm.devstack.lock import LOCK_FILE_NAME
from mahsm.devstack.process import free_port, port_is_free

MAHSM = [sys.executable, "-m", "mahsm.cli.main"]
WORKER_PRESENT = importlib.util.find_spec("workers.__main__") is not None


@dataclass
class Stack:
    data_dir: Path
    env: dict[str, str]
    ports: dict[str, int]
    runs: int = 0

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['MAHSM_API_PORT']}"

    @property
    def temporal(self) -> str:
        return f"127.0.0.1:{self.ports['MAHSM_TEMPORAL_PORT']}"

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.ports['MAHSM_POSTGRES_PORT']}/mahsm"

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*MAHSM, *args],
            env=self.env,
            cwd=self.data_dir.parent,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self) -> subprocess.Popen[str]:
        self.runs += 1  # one output file per run, so a check never sees an earlier run's lines
        with open(self._out(), "w") as log:  # the child keeps its own copy of the descriptor
            return subprocess.Popen(
                [*MAHSM, "up"],
                env=self.env,
                cwd=self.data_dir.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )

    def _out(self) -> Path:
        return self.data_dir.parent / f"up-{self.runs}.out"

    def output(self) -> str:
        return self._out().read_text(errors="replace")


@pytest.fixture
def stack() -> Iterator[Stack]:
    # Outside pytest's tmp tree, which is 0700: Postgres runs as another user when we are root.
    root = Path(tempfile.mkdtemp(prefix="mahsm-up-test-"))
    root.chmod(0o711)
    ports = {
        name: free_port()
        for name in (
            "MAHSM_API_PORT",
            "MAHSM_TEMPORAL_PORT",
            "MAHSM_TEMPORAL_UI_PORT",
            "MAHSM_POSTGRES_PORT",
        )
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAHSM_")}
    env.update({k: str(v) for k, v in ports.items()})
    env.update(MAHSM_DATA_DIR=str(root / "data"), MAHSM_LOG_FORMAT="json")
    yield Stack(data_dir=root / "data", env=env, ports=ports)
    shutil.rmtree(root, ignore_errors=True)


def _wait_healthy(stack: Stack, process: subprocess.Popen[str], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"mahsm up exited early:\n{stack.output()}"
        try:
            response = httpx.get(f"{stack.api}/health", timeout=2)
            if response.status_code == 200 and "MAHSM is up." in stack.output():
                assert response.json() == {
                    "status": "ok",
                    "temporal": {"status": "ok"},
                    "database": {"status": "ok"},
                }
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"stack not healthy after {timeout_s}s:\n{stack.output()}")


def _children(stack: Stack) -> dict[str, int]:
    state = json.loads((stack.data_dir / LOCK_FILE_NAME).read_text())
    return {name: int(entry[0]) for name, entry in state["children"].items()}


def _stop_and_assert_clean(
    stack: Stack,
    process: subprocess.Popen[str],
    children: dict[str, int],
    stop_signal: signal.Signals = signal.SIGINT,
) -> None:
    process.send_signal(stop_signal)
    assert process.wait(timeout=60) == 0, stack.output()
    assert "MAHSM stopped." in stack.output()
    for name, pid in children.items():
        # Each child led its own process group: nothing of that group may survive.
        left = [
            p.pid
            for p in psutil.process_iter()
            if _pgid(p.pid) == pid and p.status() != psutil.STATUS_ZOMBIE
        ]
        assert left == [], f"{name} left processes {left}"
    for name, port in stack.ports.items():
        assert port_is_free("127.0.0.1", port), f"{name}={port} still bound"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_for(check: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


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


@pytest.mark.skipif(not WORKER_PRESENT, reason="`python -m workers` does not exist yet")
def test_up_serves_stops_cleanly_and_keeps_state_across_restarts(stack: Stack) -> None:
    process = stack.start()
    try:
        _wait_healthy(stack, process)
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
        children = _children(stack)
        assert set(children) == {"temporal", "postgres", "worker", "api"}

        # A worker that dies is restarted, and becomes ready again.
        os.killpg(children["worker"], signal.SIGKILL)
        _wait_for(lambda: _children(stack)["worker"] != children["worker"], "worker restart")
        _wait_for((stack.data_dir / "run" / "worker.ready").exists, "restarted worker ready")
        assert "worker exited (code -9); restarting" in " ".join(stack.output().split())
        _stop_and_assert_clean(stack, process, _children(stack))

        process = stack.start()
        _wait_healthy(stack, process)
        asyncio.run(_assert_state(stack, workflow_id))

        # `mahsm up` killed outright leaves its children running; the next one stops them.
        orphans = _children(stack)
        process.kill()
        process.wait()
        assert all(psutil.pid_exists(pid) for pid in orphans.values())
        process = stack.start()
        _wait_healthy(stack, process)
        assert "Stopped processes left by a killed `mahsm up`" in stack.output()
        assert not any(_alive(pid) for pid in orphans.values())
        asyncio.run(_assert_state(stack, workflow_id))
        _stop_and_assert_clean(stack, process, _children(stack), signal.SIGTERM)
    finally:
        _ensure_stopped(process)


def _ensure_stopped(process: subprocess.Popen[str]) -> None:
    """After a failed assertion: stop the stack anyway, so the next tests find free ports."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.skipif(not WORKER_PRESENT, reason="`python -m workers` does not exist yet")
def test_up_uses_external_temporal_and_postgres_when_configured(
    stack: Stack, temporal_env: WorkflowEnvironment, database_url: str
) -> None:
    address = temporal_env.client.service_client.config.target_host
    stack.env.update(MAHSM_TEMPORAL_ADDRESS=address, MAHSM_DATABASE_URL=database_url)
    process = stack.start()
    try:
        _wait_healthy(stack, process)
        children = _children(stack)
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
        _ensure_stopped(process)
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
