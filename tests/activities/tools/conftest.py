"""Fixtures of the tool tests: settings on a per-test data dir, contexts, the activity, and
the separate database the `sql_query` tool reads (with a least-privilege role)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio

from mahsm.activities.blobs import BlobStore
from mahsm.activities.tools import ToolActivities, ToolContext, ToolRegistry, default_registry
from mahsm.activities.tools.sql import create_sql_pool
from mahsm.contracts.llm import ToolCall
from mahsm.contracts.task import Capability
from mahsm.contracts.tools import ToolInvocation
from mahsm.devstack.postgres import EmbeddedPostgres
from mahsm.settings import Settings


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    return Settings(_env_file=None, data_dir=data_dir, **overrides)


@pytest.fixture
def tool_settings(data_dir: Path) -> Settings:
    return make_settings(data_dir, tool_timeout_s=5.0)


@pytest.fixture
def settings_with(data_dir: Path) -> Callable[..., Settings]:
    """`settings_with(tool_timeout_s=...)`: settings on the test's data dir with overrides."""
    return lambda **overrides: make_settings(data_dir, **overrides)


@pytest.fixture
def make_context(tool_settings: Settings) -> Callable[..., ToolContext]:
    """`make_context(task_id=..., pool=...)`: a ToolContext on the test's data dir."""

    def make(
        *,
        task_id: str = "task-1",
        pool: asyncpg.Pool | None = None,
        settings: Settings | None = None,
        key: str = "wf:run:1",
        sql_pool: asyncpg.Pool | None = None,
    ) -> ToolContext:
        settings = settings or tool_settings
        return ToolContext(
            task_id=task_id,
            subtask_id="s1",
            workspace=settings.workspace_root() / task_id,
            pool=pool,  # type: ignore[arg-type]
            blobs=BlobStore(pool, threshold_bytes=settings.claim_check_bytes),  # type: ignore[arg-type]
            idempotency_key=key,
            settings=settings,
            sql_pool=sql_pool,
        )

    return make


def _invocation(
    name: str,
    arguments: str = "{}",
    *,
    task_id: str = "task-1",
    capabilities: list[Capability] | None = None,
    call_id: str = "call-1",
) -> ToolInvocation:
    return ToolInvocation(
        task_id=task_id,
        subtask_id="s1",
        call=ToolCall(id=call_id, name=name, arguments=arguments),
        capabilities=list(Capability) if capabilities is None else capabilities,
    )


@pytest.fixture
def make_invocation() -> Callable[..., ToolInvocation]:
    """`make_invocation(name, arguments_json, capabilities=...)`: one tool call."""
    return _invocation


@pytest.fixture
def make_activities(
    db_pool: asyncpg.Pool, tool_settings: Settings
) -> Callable[..., ToolActivities]:
    """`make_activities(registry=..., sql_pool=..., **settings_overrides)`: a ToolActivities
    on real Postgres (no SQL-tool pool unless given)."""

    def make(
        registry: ToolRegistry | None = None,
        *,
        sql_pool: asyncpg.Pool | None = None,
        **overrides: Any,
    ) -> ToolActivities:
        settings = (
            make_settings(tool_settings.data_dir, **{"tool_timeout_s": 5.0, **overrides})
            if overrides
            else tool_settings
        )
        return ToolActivities(
            pool=db_pool,
            settings=settings,
            blobs=BlobStore(db_pool, threshold_bytes=settings.claim_check_bytes),
            registry=registry or default_registry(),
            sql_pool=sql_pool,
        )

    return make


@dataclass(frozen=True)
class AgentsDatabase:
    """The database agents may query, apart from MAHSM's, and the roles on it."""

    name: str
    admin_url: str  # superuser: sets it up and checks what the tool did
    reader_url: str  # the least-privilege role the tool connects as
    reader: str


def _with_user(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def agents_database(postgres_server: EmbeddedPostgres) -> AsyncIterator[AgentsDatabase]:
    """A separate database with a few tables and a reader role, set up as docs/tools.md says.

    The reader may connect to it and SELECT `customers`; it may also INSERT into `scratch`,
    so that the tests can show the read-only transaction (not a missing grant) stops writes.
    """
    suffix = uuid.uuid4().hex[:8]
    name, reader = f"agents_{suffix}", f"agent_reader_{suffix}"
    admin_url = postgres_server.create_database(name)
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(
            f"CREATE ROLE {reader} LOGIN PASSWORD 'reader-pw'"
            " NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;"
            f"REVOKE ALL ON DATABASE {name} FROM PUBLIC;"
            f"GRANT CONNECT ON DATABASE {name} TO {reader};"
            "REVOKE ALL ON SCHEMA public FROM PUBLIC;"
            f"GRANT USAGE ON SCHEMA public TO {reader};"
            "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);"
            "INSERT INTO customers VALUES (1, 'Ada'), (2, 'Grace');"
            f"GRANT SELECT ON customers TO {reader};"
            "CREATE TABLE scratch (note text);"
            f"GRANT SELECT, INSERT ON scratch TO {reader};"
            "CREATE TABLE secrets (value text);"
            "INSERT INTO secrets VALUES ('not for agents');"
        )
    finally:
        await admin.close()
    yield AgentsDatabase(
        name=name,
        admin_url=admin_url,
        reader_url=_with_user(admin_url, reader, "reader-pw"),
        reader=reader,
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sql_pool(agents_database: AgentsDatabase) -> AsyncIterator[asyncpg.Pool]:
    """The worker's SQL-tool pool on the agents' database, as the reader role.

    One connection, so a test can check that nothing a query set leaks to the next one.
    """
    pool = await create_sql_pool(agents_database.reader_url, max_size=1)
    yield pool
    await pool.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def agents_admin_pool(agents_database: AgentsDatabase) -> AsyncIterator[asyncpg.Pool]:
    """A superuser pool on the agents' database, to set up and inspect it."""
    pool = await asyncpg.create_pool(agents_database.admin_url, min_size=1, max_size=2)
    assert pool is not None
    yield pool
    await pool.close()
