"""`mahsm up`: Temporal, Postgres, one worker and the API on one machine, as child processes.

Start order is Temporal dev server, Postgres, migrations, worker, API; stop order is the
reverse. The MLflow tracking server (unless a tracking URI is configured) is launched before
all of them and waited for after them: it is the slowest to start. Each part is waited for
until it is ready, and every child runs in its own process group, so stopping it stops
everything it started. While up, a Postgres, worker, API or MLflow server that dies is
restarted (Postgres on its data, MLflow on its store); a dead Temporal dev server stops the
stack. Readiness contract of the worker: it creates the file named by `MAHSM_READY_FILE` once
it polls its task queues.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import structlog

from mahsm.db.migrate import migrate
from mahsm.devstack.lock import StackLock
from mahsm.devstack.mlflow_server import MlflowServer
from mahsm.devstack.postgres import EmbeddedPostgres
from mahsm.devstack.process import ManagedProcess, port_is_free, wait_until
from mahsm.devstack.temporal import TemporalDevServer
from mahsm.logging import redact_text
from mahsm.settings import Settings

log = structlog.get_logger(__name__)

MAX_RESTARTS = 5
# MLflow's server imports much of the ML stack: on a loaded machine a minute or more.
MLFLOW_READY_TIMEOUT_S = 300.0


class StackError(RuntimeError):
    """A part of the stack could not start or died; the message says which and what to do."""


@dataclass(frozen=True)
class StackInfo:
    """Where the parts of a running stack can be reached."""

    api_url: str
    docs_url: str
    temporal_address: str
    temporal_ui_url: str | None
    database_url: str
    data_dir: Path
    logs_dir: Path
    default_model: str
    mlflow_tracking_uri: str = ""
    mlflow_ui_url: str | None = None

    @property
    def dashboard_url(self) -> str:
        """The dashboard the API serves (docs/dashboard.md)."""
        return f"{self.api_url}/ui/"


@dataclass
class _Role:
    """A Python child process (worker or API) that the stack restarts when it dies."""

    name: str
    argv: list[str]
    env: dict[str, str]
    ready_file: Path | None = None
    process: ManagedProcess | None = None
    restarts: int = 0


class DevStack:
    """The embedded stack of one data directory.

    Args:
        settings: Configuration; `temporal_address`/`database_url` select external services.
        on_step: Called with a short line for each step (the CLI prints them).
        python: Interpreter for the worker and API processes.
        ready_timeout_s: How long each part may take to become ready.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        on_step: Callable[[str], None] | None = None,
        python: str = sys.executable,
        ready_timeout_s: float = 90.0,
    ) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        self.logs_dir = self.data_dir / "logs"
        self.ready_file = self.data_dir / "run" / "worker.ready"
        self._on_step = on_step or (lambda line: None)
        self._python = python
        self._timeout = ready_timeout_s
        self._lock = StackLock(self.data_dir)
        self._temporal: TemporalDevServer | None = None
        self._postgres: EmbeddedPostgres | None = None
        self._postgres_restarts = 0
        self._mlflow: MlflowServer | None = None
        self._mlflow_restarts = 0
        self._roles: list[_Role] = []
        self.info: StackInfo | None = None

    # -- start ---------------------------------------------------------------------------

    def start(self) -> StackInfo:
        """Start every part and wait until each is ready; on failure stop what was started.

        Raises:
            StackAlreadyRunning: Another `mahsm up` uses this data directory.
            StackError: A port is taken or a part failed to start.
        """
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        leftovers = self._lock.acquire()
        if leftovers:
            self._step(f"Stopped processes left by a killed `mahsm up`: {', '.join(leftovers)}")
        try:
            return self._start_parts()
        except BaseException:
            self.stop()
            raise

    def _start_parts(self) -> StackInfo:
        s = self.settings
        self._check_ports()
        if self.uses_embedded_mlflow:
            self._mlflow = MlflowServer(
                self.data_dir, port=s.mlflow_port, log_path=self.logs_dir / "mlflow.log"
            )
            self._step(f"Starting MLflow tracking server on {self._mlflow.url} ...")
            self._mlflow.launch()
            assert self._mlflow.process is not None and self._mlflow.process.pid is not None
            self._lock.record_child("mlflow", self._mlflow.process.pid)
        if s.uses_embedded_temporal:
            self._step(f"Starting Temporal dev server on 127.0.0.1:{s.temporal_port} ...")
            self._temporal = TemporalDevServer(
                self.data_dir / "temporal.db",
                port=s.temporal_port,
                ui_port=s.temporal_ui_port,
                log_path=self.logs_dir / "temporal.log",
                namespace=s.temporal_namespace,
            )
            self._started("temporal", self._temporal.start, self._temporal_process)
            temporal_address, ui_url = self._temporal.address, self._temporal.ui_url
        else:
            temporal_address, ui_url = s.temporal_target, s.temporal_ui_url
            self._step(f"Using Temporal at {temporal_address}")

        if s.database_url is None:
            self._step(f"Starting Postgres on 127.0.0.1:{s.postgres_port} ...")
            self._postgres = EmbeddedPostgres(
                self.data_dir / "postgres",
                port=s.postgres_port,
                log_path=self.logs_dir / "postgres.log",
            )
            database_url = self._started("postgres", self._postgres.start, self._pg_process)
            if not self._postgres.pgdata.is_relative_to(self.data_dir):
                self._step(
                    f"Postgres data: {self._postgres.pgdata} (the data dir is out of the"
                    " Postgres system user's reach; it links there)"
                )
        else:
            database_url = s.database_url.get_secret_value()
            self._step(f"Using Postgres at {redact_text(database_url)}")

        self._step("Applying database migrations ...")
        try:
            applied = asyncio.run(migrate(database_url))
        except Exception as error:  # any failure: connection, SQL, permissions
            raise StackError(f"database migrations failed: {redact_text(str(error))}") from error
        self._step(f"Migrations applied: {', '.join(applied)}" if applied else "Schema up to date")

        env = self._child_env(temporal_address, database_url, ui_url)
        self._step("Starting worker ...")
        self.ready_file.parent.mkdir(parents=True, exist_ok=True)
        self.ready_file.unlink(missing_ok=True)
        worker = _Role(
            "worker",
            [self._python, "-m", "mahsm.workers"],
            {**env, "MAHSM_READY_FILE": str(self.ready_file)},
            ready_file=self.ready_file,
        )
        self._launch(worker)
        self._wait_ready(worker, self.ready_file.exists)

        api_url = f"http://{s.api_host}:{s.api_port}"
        self._step(f"Starting API on {api_url} ...")
        api = _Role("api", [self._python, "-m", "mahsm.api"], env)
        self._launch(api)
        self._wait_ready(api, lambda: _health_ok(api_url))
        self._wait_mlflow()

        self.info = StackInfo(
            api_url=api_url,
            docs_url=f"{api_url}/docs",
            temporal_address=temporal_address,
            temporal_ui_url=ui_url,
            database_url=redact_text(database_url),
            data_dir=self.data_dir,
            logs_dir=self.logs_dir,
            default_model=s.default_model,
            mlflow_tracking_uri=redact_text(env["MAHSM_MLFLOW_TRACKING_URI"]),
            mlflow_ui_url=self._mlflow.url if self._mlflow else None,
        )
        log.debug("stack up", api=api_url, temporal=temporal_address, data_dir=str(self.data_dir))
        return self.info

    @property
    def uses_embedded_mlflow(self) -> bool:
        """True unless a tracking URI is configured: then that server is used and none started."""
        return not (self.settings.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"))

    def _wait_mlflow(self) -> None:
        if self._mlflow is None:
            return
        self._step(f"Waiting for the MLflow tracking server (see {self._mlflow.log_path}) ...")
        try:
            self._mlflow.wait_ready(timeout_s=max(self._timeout, MLFLOW_READY_TIMEOUT_S))
        except (RuntimeError, TimeoutError) as error:
            raise StackError(
                f"MLflow failed to start: {error}\nOr use an existing server: MLFLOW_TRACKING_URI."
            ) from error

    def _check_ports(self) -> None:
        s = self.settings
        wanted: list[tuple[str, int, str]] = [("API", s.api_port, "MAHSM_API_PORT")]
        if self.uses_embedded_mlflow:
            wanted.append(("MLflow", s.mlflow_port, "MAHSM_MLFLOW_PORT"))
        if s.uses_embedded_temporal:
            wanted += [
                ("Temporal", s.temporal_port, "MAHSM_TEMPORAL_PORT"),
                ("Temporal UI", s.temporal_ui_port, "MAHSM_TEMPORAL_UI_PORT"),
            ]
        if s.uses_embedded_postgres:
            wanted.append(("Postgres", s.postgres_port, "MAHSM_POSTGRES_PORT"))
        for what, port, variable in wanted:
            host = s.api_host if what == "API" else "127.0.0.1"
            if not port_is_free(host, port):
                raise StackError(
                    f"port {port} ({what}) is already in use by another program. Stop it, or"
                    f" choose another port with {variable}."
                )

    def _started(
        self, name: str, start: Callable[..., str], process: Callable[[], ManagedProcess | None]
    ) -> str:
        try:
            result = start(timeout_s=self._timeout)
        except (RuntimeError, TimeoutError, OSError) as error:
            raise StackError(f"{name} failed to start: {error}") from error
        finally:
            started = process()
            if started is not None and started.pid is not None:
                self._lock.record_child(name, started.pid)
        return result

    def _temporal_process(self) -> ManagedProcess | None:
        return self._temporal.process if self._temporal else None

    def _pg_process(self) -> ManagedProcess | None:
        return self._postgres.process if self._postgres else None

    def _child_env(self, temporal: str, database_url: str, ui_url: str | None) -> dict[str, str]:
        env = dict(os.environ)
        mlflow_uri = (
            self._mlflow.url
            if self._mlflow is not None
            else self.settings.model_copy(update={"data_dir": self.data_dir}).mlflow_uri()
        )
        env.update(
            MAHSM_TEMPORAL_ADDRESS=temporal,
            MAHSM_DATABASE_URL=database_url,
            MAHSM_DATA_DIR=str(self.data_dir),
            MAHSM_API_HOST=self.settings.api_host,
            MAHSM_API_PORT=str(self.settings.api_port),
            PYTHONUNBUFFERED="1",
            # Experiments log here: the stack's MLflow server, or the configured tracking URI.
            MAHSM_MLFLOW_TRACKING_URI=mlflow_uri,
            MLFLOW_TRACKING_URI=mlflow_uri,
        )
        if ui_url:
            env["MAHSM_TEMPORAL_UI_URL"] = ui_url
        env.pop("MAHSM_READY_FILE", None)
        return env

    def _launch(self, role: _Role) -> None:
        role.process = ManagedProcess(
            role.name, role.argv, log_path=self.logs_dir / f"{role.name}.log", env=role.env
        ).start()
        if role not in self._roles:
            self._roles.append(role)
        assert role.process.pid is not None
        self._lock.record_child(role.name, role.process.pid)

    def _wait_ready(self, role: _Role, check: Callable[[], bool]) -> None:
        try:
            wait_until(check, timeout_s=self._timeout, what=role.name, process=role.process)
        except (RuntimeError, TimeoutError) as error:
            raise StackError(str(error)) from error

    # -- run -----------------------------------------------------------------------------

    def supervise(self) -> None:
        """Check the children once: restart a dead Postgres, worker or API; fail if Temporal died.

        Raises:
            StackError: Temporal exited, or another part died too often.
        """
        temporal = self._temporal_process()
        if temporal is not None and not temporal.running:
            raise StackError(
                f"Temporal dev server exited (code {temporal.returncode}).{temporal.tail()}"
            )
        self._supervise_postgres()
        self._supervise_mlflow()
        for role in self._roles:
            if role.process is None or role.process.running:
                continue
            if role.restarts >= MAX_RESTARTS:
                raise StackError(
                    f"{role.name} exited {role.restarts + 1} times; giving up.{role.process.tail()}"
                )
            role.restarts += 1
            self._step(
                f"{role.name} exited (code {role.process.returncode}); restarting"
                f" (see {role.process.log_path})"
            )
            role.process.stop(timeout_s=5)  # reap whatever is left of its process group
            if role.ready_file is not None:
                role.ready_file.unlink(missing_ok=True)
            self._launch(role)

    def _supervise_postgres(self) -> None:
        """Restart a Postgres that died, on its data: it recovers from its WAL at start.

        The worker and the API keep running; their pools reconnect, and activities that
        failed meanwhile are retried by Temporal.
        """
        server = self._pg_process()
        if self._postgres is None or server is None or server.running:
            return
        if self._postgres_restarts >= MAX_RESTARTS:
            raise StackError(
                f"Postgres exited {self._postgres_restarts + 1} times; giving up.{server.tail()}"
            )
        self._postgres_restarts += 1
        self._step(
            f"Postgres exited (code {server.returncode}); restarting on its data"
            f" (see {server.log_path})"
        )
        server.stop(timeout_s=5)  # reap backends left in its process group
        self._started("postgres", self._postgres.start, self._pg_process)
        self._step("Postgres is back.")

    def _supervise_mlflow(self) -> None:
        """Restart an MLflow server that died, on its store.

        Experiments meanwhile still complete; their MLflow sync is retried (`mahsm experiment
        sync`).
        """
        server = self._mlflow
        if server is None or server.process is None or server.process.running:
            return
        if self._mlflow_restarts >= MAX_RESTARTS:
            raise StackError(
                f"MLflow exited {self._mlflow_restarts + 1} times; giving up."
                f"{server.process.tail()}"
            )
        self._mlflow_restarts += 1
        self._step(
            f"MLflow exited (code {server.process.returncode}); restarting (see {server.log_path})"
        )
        server.process.stop(timeout_s=5)
        server.launch()
        assert server.process is not None and server.process.pid is not None
        self._lock.record_child("mlflow", server.process.pid)

    def wait(self, *, poll_s: float = 0.5) -> None:
        """Supervise until interrupted (KeyboardInterrupt) or a part fails for good (StackError)."""
        while True:
            self.supervise()
            time.sleep(poll_s)

    # -- stop ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop everything in reverse start order, then release the lock. Safe to call twice."""
        for role in reversed(self._roles):
            if role.process is not None:
                # The worker lets in-flight activities finish first (its shutdown grace).
                grace = self.settings.worker_shutdown_grace_s if role.name == "worker" else 0
                note = f" (in-flight activities may finish, up to {grace:g} s)" if grace else ""
                self._step(f"Stopping {role.name}{note} ...")
                self._stop_quietly(role.name, partial(role.process.stop, timeout_s=grace + 15))
                role.process = None
        self._roles.clear()
        self.ready_file.unlink(missing_ok=True)
        if self._postgres is not None:
            self._step("Stopping Postgres ...")
            self._stop_quietly("postgres", self._postgres.stop)
            self._postgres = None
        if self._temporal is not None:
            self._step("Stopping Temporal dev server ...")
            self._stop_quietly("temporal", self._temporal.stop)
            self._temporal = None
        if self._mlflow is not None:
            self._step("Stopping MLflow ...")
            self._stop_quietly("mlflow", self._mlflow.stop)
            self._mlflow = None
        self._lock.release()

    def _stop_quietly(self, name: str, stop: Callable[[], None]) -> None:
        try:
            stop()
        except Exception:  # keep stopping the other parts; the error is logged
            log.exception("stop failed", part=name)
        self._lock.forget_child(name)

    def _step(self, line: str) -> None:
        log.debug("stack step", step=line)
        self._on_step(line)


def _health_ok(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False
