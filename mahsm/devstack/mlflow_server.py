"""The MLflow tracking server (UI + REST API) of `mahsm up`, on a SQLite store in the data dir.

Started first and waited for last: the server imports much of the ML stack and is the
slowest part to come up, so it starts while Temporal, Postgres, the worker and the API do.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx

from mahsm.devstack.process import ManagedProcess, port_is_free, wait_until


def mlflow_cli_path() -> str:
    """The `mlflow` script of the full `mlflow` package, beside this interpreter."""
    beside_python = Path(sys.executable).parent / "mlflow"
    if not beside_python.exists():
        raise RuntimeError("'mlflow' command not found: install MAHSM with pip (it depends on it)")
    return str(beside_python)


class MlflowServer:
    """`mlflow server` on 127.0.0.1:`port`, SQLite store and artifacts under `data_dir`."""

    def __init__(self, data_dir: Path, *, port: int, log_path: Path) -> None:
        self.store_uri = f"sqlite:///{data_dir / 'mlflow.db'}"
        # The place the SQLite store logged artifacts to before the server existed.
        self.artifacts_dir = data_dir / "mlflow-artifacts"
        self.port = port
        self.log_path = log_path
        self.host = "127.0.0.1"
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """The UI and tracking URI (clients log through the server, artifacts included)."""
        return f"http://{self.host}:{self.port}"

    def launch(self) -> None:
        """Start the server without waiting for it (see `wait_ready`)."""
        if not port_is_free(self.host, self.port):
            raise RuntimeError(
                f"port {self.port} (MLflow) is in use: stop that program, choose another port"
                " with MAHSM_MLFLOW_PORT, or point MLFLOW_TRACKING_URI at an existing server"
            )
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            mlflow_cli_path(),
            "server",
            "--backend-store-uri",
            self.store_uri,
            "--artifacts-destination",
            str(self.artifacts_dir),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--workers",
            "1",  # a dev stack: one process is plenty and keeps memory low
        ]
        env = dict(os.environ)
        # Offline machines: LiteLLM (imported by the server) would try to download a price list.
        env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        env.pop("MLFLOW_TRACKING_URI", None)
        self.process = ManagedProcess("mlflow", argv, log_path=self.log_path, env=env).start()

    def wait_ready(self, *, timeout_s: float) -> str:
        """Wait until the REST API answers; returns the URL."""
        wait_until(self._ready, timeout_s=timeout_s, what="MLflow server", process=self.process)
        return self.url

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        """Stop the server; the SQLite store and artifacts stay in the data dir."""
        if self.process is not None:
            self.process.stop(timeout_s=10)
            self.process = None
