"""Child processes that start in their own process group and stop without leaving orphans."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((host, port)) != 0


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS considers free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], bool], *, timeout_s: float, what: str, process: ManagedProcess | None = None
) -> None:
    """Poll `check` until it holds; fail naming `what` (and the process log) otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and not process.running:
            raise RuntimeError(f"{what} exited early (code {process.returncode}).{process.tail()}")
        if check():
            return
        time.sleep(0.1)
    tail = process.tail() if process else ""
    raise TimeoutError(f"{what} not ready after {timeout_s:.0f}s.{tail}")


class ManagedProcess:
    """One child process with its output in a log file; stopping it stops its whole group."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: dict[str, str] | None = None,
        user: str | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.user = user
        self.stop_signal = stop_signal
        self.cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        """Start the process in a new session, so a terminal's Ctrl-C reaches only the parent."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self._popen = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                # Drop root's groups too: a root gid would deny access to 0701 parents.
                user=self.user,
                group=self.user,
                extra_groups=[] if self.user else None,
                cwd=self.cwd,
                start_new_session=True,
            )
        finally:
            log.close()
        return self

    @property
    def pid(self) -> int | None:
        """The child's pid, once started."""
        return self._popen.pid if self._popen else None

    @property
    def running(self) -> bool:
        """True while the child has not exited."""
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit code, once the child has exited."""
        return self._popen.poll() if self._popen else None

    def tail(self, lines: int = 20) -> str:
        """The end of the log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return f"\n--- last lines of {self.log_path} ---\n" + "\n".join(text)

    def stop(self, timeout_s: float = 15.0) -> None:
        """Ask the process group to stop; kill whatever is left after `timeout_s`."""
        if self._popen is None:
            return
        pgid = self._popen.pid
        group = _group_members(pgid)
        if self._popen.poll() is None:
            try:
                os.killpg(pgid, self.stop_signal)
            except ProcessLookupError:
                pass
            try:
                self._popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                pass
        _, alive = psutil.wait_procs(group, timeout=max(1.0, timeout_s / 3))
        for leftover in alive:
            try:
                leftover.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)
        if self._popen.poll() is None:
            self._popen.kill()
            self._popen.wait(timeout=5)

    def kill(self) -> None:
        """SIGKILL the whole group at once (for fault tests)."""
        if self._popen is None:
            return
        try:
            os.killpg(self._popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._popen.wait(timeout=10)


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid:
                members.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            continue
    return members
