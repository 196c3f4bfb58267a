"""Running `mahsm up` in tests: the real command, real servers, free ports, a throwaway data dir."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from mahsm.devstack.lock import LOCK_FILE_NAME
from mahsm.devstack.process import free_port, port_is_free

MAHSM = [sys.executable, "-m", "mahsm.cli.main"]
WORKER_PRESENT = importlib.util.find_spec("mahsm.workers.__main__") is not None


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


def make_stack(*, mlflow_server: bool = False) -> Iterator[Stack]:
    """A throwaway stack on free ports (the `stack` fixture of tests/devstack/conftest.py).

    Without `mlflow_server`, experiments log to a SQLite file (MLFLOW_TRACKING_URI), so the
    stack starts no MLflow server: most tests need none, and it is the slowest part to start.
    """
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
            "MAHSM_MLFLOW_PORT",
        )
    }
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MAHSM_") and k != "MLFLOW_TRACKING_URI"
    }
    env.update({k: str(v) for k, v in ports.items()})
    if not mlflow_server:
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    env.update(MAHSM_DATA_DIR=str(root / "data"), MAHSM_LOG_FORMAT="json")
    yield Stack(data_dir=root / "data", env=env, ports=ports)
    shutil.rmtree(root, ignore_errors=True)


def wait_healthy(stack: Stack, process: subprocess.Popen[str], timeout_s: float = 90) -> None:
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


def child_pids(stack: Stack) -> dict[str, int]:
    state = json.loads((stack.data_dir / LOCK_FILE_NAME).read_text())
    return {name: int(entry[0]) for name, entry in state["children"].items()}


def stop_and_assert_clean(
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
            if pgid(p.pid) == pid and p.status() != psutil.STATUS_ZOMBIE
        ]
        assert left == [], f"{name} left processes {left}"
    for name, port in stack.ports.items():
        assert port_is_free("127.0.0.1", port), f"{name}={port} still bound"


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def ensure_stopped(process: subprocess.Popen[str]) -> None:
    """After a failed assertion: stop the stack anyway, so the next tests find free ports."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
