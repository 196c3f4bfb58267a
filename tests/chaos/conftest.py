"""A whole MAHSM deployment of real processes on loopback, for one fault test.

`chaos_stack` starts embedded Postgres and a Temporal dev server (SQLite file) of its own,
and lets the test start worker and API processes (`python -m mahsm.workers`, `python -m mahsm.api`),
kill them and start new ones. Whatever it started is stopped in a `finally`, even when the test
fails or times out, so no process outlives the test.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
import yaml
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from mahsm.db.migrate import migrate
from mahsm.devstack.postgres import EmbeddedPostgres
from mahsm.devstack.process import ManagedProcess, free_port
from mahsm.devstack.temporal import TemporalDevServer

REPO = Path(__file__).resolve().parents[2]


class ChaosStack:
    """Postgres + Temporal owned by one test, plus the worker and API processes it starts."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.postgres = EmbeddedPostgres(
            root / "pgdata", port=free_port(), log_path=root / "postgres.log"
        )
        self.temporal = TemporalDevServer(
            root / "temporal" / "temporal.db",
            port=free_port(),
            ui_port=None,
            log_path=root / "temporal.log",
        )
        self.api_port = free_port()
        self.prefix = f"chaos{uuid.uuid4().hex[:8]}"
        self.scenario_file = root / "scenario.yaml"
        self.call_log = root / "calls.jsonl"
        self.database_url = ""
        self.workers: list[ManagedProcess] = []
        self.apis: list[ManagedProcess] = []
        self._client: Client | None = None
        self.worker_env: dict[str, str] = {}

    # -- servers --------------------------------------------------------------------------

    async def start_servers(self, scenario: dict[str, Any]) -> None:
        self.scenario_file.write_text(yaml.safe_dump(scenario))
        await asyncio.to_thread(self.postgres.start)
        self.database_url = self.postgres.url
        await migrate(self.database_url)
        await asyncio.to_thread(self.temporal.start)

    async def restart_temporal(self, *, kill: bool) -> None:
        """SIGKILL (or stop) Temporal and start it again on the same SQLite file and port."""
        self.temporal.kill() if kill else self.temporal.stop()
        await asyncio.to_thread(self.temporal.start)

    async def restart_postgres(self, *, kill: bool, down_s: float = 0.0) -> None:
        """SIGKILL (or stop) Postgres; after `down_s`, start it on the same data and port."""
        await asyncio.to_thread(self.postgres.kill if kill else self.postgres.stop)
        await asyncio.sleep(down_s)
        await asyncio.to_thread(self.postgres.start)

    async def client(self) -> Client:
        if self._client is None:
            self._client = await Client.connect(
                self.temporal.address, data_converter=pydantic_data_converter
            )
        return self._client

    # -- processes ------------------------------------------------------------------------

    def _env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAHSM_")}
        env.update(
            MAHSM_DATABASE_URL=self.database_url,
            MAHSM_TEMPORAL_ADDRESS=self.temporal.address,
            MAHSM_QUEUE_PREFIX=self.prefix,
            MAHSM_SCRIPTED_SCENARIO=str(self.scenario_file),
            MAHSM_SCRIPTED_CALL_LOG=str(self.call_log),
            MAHSM_DEFAULT_MODEL="scripted/chaos",
            MAHSM_DATA_DIR=str(self.root / "data"),
            MAHSM_LOG_FORMAT="json",
            MAHSM_LOG_LEVEL="WARNING",
            MAHSM_CODE_MODULES="examples,tests",  # the tests' transforms and DSPy programs
            PYTHONPATH=str(REPO),
        )
        env.update(self.worker_env)
        env.update(extra)
        return env

    async def start_worker(self, timeout_s: float = 60.0) -> ManagedProcess:
        """Start `python -m mahsm.workers` and wait until it polls its queues."""
        index = len(self.workers)
        ready = self.root / f"worker-{index}.ready"
        process = ManagedProcess(
            f"worker-{index}",
            [sys.executable, "-m", "mahsm.workers"],
            log_path=self.root / f"worker-{index}.log",
            env=self._env(MAHSM_READY_FILE=str(ready)),
            cwd=REPO,
        ).start()
        self.workers.append(process)
        deadline = time.monotonic() + timeout_s
        while not ready.exists():
            assert process.running, f"worker exited early.{process.tail()}"
            assert time.monotonic() < deadline, f"worker not ready.{process.tail()}"
            await asyncio.sleep(0.1)
        return process

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    async def start_api(self, timeout_s: float = 60.0) -> ManagedProcess:
        """Start `python -m mahsm.api` on the stack's API port and wait until /health is 200."""
        index = len(self.apis)
        process = ManagedProcess(
            f"api-{index}",
            [sys.executable, "-m", "mahsm.api"],
            log_path=self.root / f"api-{index}.log",
            env=self._env(MAHSM_API_HOST="127.0.0.1", MAHSM_API_PORT=str(self.api_port)),
            cwd=REPO,
        ).start()
        self.apis.append(process)
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=self.api_url, timeout=2) as http:
            while True:
                assert process.running, f"API exited early.{process.tail()}"
                try:
                    if (await http.get("/health")).status_code == 200:
                        return process
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"API not healthy.{process.tail()}"
                await asyncio.sleep(0.2)

    def calls(self) -> list[dict[str, Any]]:
        """The scripted provider's call log (every worker appends to the same file)."""
        if not self.call_log.exists():
            return []
        return [json.loads(line) for line in self.call_log.read_text().splitlines() if line]

    def close(self) -> None:
        """Stop everything this stack started; one failure does not leave the rest running."""
        errors: list[BaseException] = []
        stops = [p.stop for p in [*self.apis, *self.workers]]
        for stop in [*stops, self.temporal.stop, self.postgres.stop]:
            try:
                stop()
            except Exception as error:  # keep stopping the others, then report
                errors.append(error)
        if errors:
            raise errors[0]


@pytest_asyncio.fixture(loop_scope="session")
async def chaos_stack() -> AsyncIterator[ChaosStack]:
    """A fresh deployment per test; `await stack.start_servers(scenario)` brings it up."""
    # Outside pytest's 0700 tmp tree: Postgres runs as an unprivileged user when we are root.
    root = Path(tempfile.mkdtemp(prefix="mahsm-chaos-"))
    root.chmod(0o711)
    stack = ChaosStack(root)
    try:
        yield stack
    finally:
        try:
            stack.close()
        finally:
            if os.environ.get("MAHSM_KEEP_CHAOS_DIR"):
                print(f"chaos data kept in {root}")  # noqa: T201
            else:
                shutil.rmtree(root, ignore_errors=True)
