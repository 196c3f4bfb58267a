"""The lock that keeps one `mahsm up` per data directory, and cleans up after a killed one."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
from pathlib import Path
from typing import IO

import psutil

LOCK_FILE_NAME = "mahsm-up.lock"


class StackAlreadyRunning(RuntimeError):
    """Another `mahsm up` holds the lock of this data directory."""

    def __init__(self, pid: int | None, data_dir: Path) -> None:
        self.pid = pid
        who = f"pid {pid}" if pid else "pid unknown"
        super().__init__(
            f"MAHSM is already running ({who}) with data directory {data_dir}. "
            "Stop it with Ctrl-C in its terminal (or `kill -TERM "
            f"{pid or '<pid>'}`), or use another MAHSM_DATA_DIR."
        )


class StackLock:
    """An exclusive `flock` on `<data_dir>/mahsm-up.lock`, recording the pids of the stack.

    The kernel drops the lock when its holder dies, however it dies, so a lock left by a dead
    process is taken over without a check of its pid. Child processes of a killed holder
    (they run in their own sessions) are recorded in the file and stopped on takeover.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_FILE_NAME
        self._file: IO[str] | None = None
        self._children: dict[str, tuple[int, float]] = {}

    def acquire(self) -> list[str]:
        """Take the lock; returns the names of leftover children that were stopped.

        Raises:
            StackAlreadyRunning: Another live process holds the lock.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = _parse(handle.read()).get("pid")
            handle.close()
            holder = pid if isinstance(pid, int) else None
            raise StackAlreadyRunning(holder, self.data_dir) from None
        handle.seek(0)
        leftovers = _stop_leftovers(_parse(handle.read()).get("children", {}))
        self._file = handle
        self._write()
        return leftovers

    def record_child(self, name: str, pid: int) -> None:
        """Remember a started child, so a later takeover can stop it if we die."""
        with contextlib.suppress(psutil.NoSuchProcess):
            self._children[name] = (pid, psutil.Process(pid).create_time())
            self._write()

    def forget_child(self, name: str) -> None:
        """Drop a child that was stopped."""
        if self._children.pop(name, None) is not None:
            self._write()

    def release(self) -> None:
        """Release the lock; the file stays (deleting it could race a starting instance)."""
        if self._file is None:
            return
        self._children.clear()
        self._file.seek(0)
        self._file.truncate()
        self._file.flush()
        fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        self._file.close()
        self._file = None

    def _write(self) -> None:
        assert self._file is not None
        state = {
            "pid": os.getpid(),
            "children": {n: [pid, created] for n, (pid, created) in self._children.items()},
        }
        self._file.seek(0)
        self._file.truncate()
        self._file.write(json.dumps(state))
        self._file.flush()


def _parse(text: str) -> dict[str, object]:
    try:
        state = json.loads(text)
    except ValueError:
        return {}
    return state if isinstance(state, dict) else {}


def _stop_leftovers(children: object) -> list[str]:
    """Kill the process groups of children recorded by a holder that died without stopping."""
    stopped: list[str] = []
    if not isinstance(children, dict):
        return stopped
    # Stop in reverse start order: API and worker before the servers they use.
    for name, entry in reversed(list(children.items())):
        try:
            pid, created = int(entry[0]), float(entry[1])
            process = psutil.Process(pid)
            if abs(process.create_time() - created) > 0.01:
                continue  # the pid was reused by an unrelated process
        except (psutil.NoSuchProcess, TypeError, ValueError, IndexError):
            continue
        # Children lead their own process group (start_new_session), so the group id is the pid.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)
            try:
                process.wait(timeout=10)
                break
            except psutil.TimeoutExpired:
                continue
        stopped.append(str(name))
    return stopped
