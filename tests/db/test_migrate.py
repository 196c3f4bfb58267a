"""Migrations against a real Postgres: applied once, recorded, safe to run concurrently."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from mahsm.db.migrate import bundled_migrations, migrate
from mahsm.db.pool import create_pool
from mahsm.devstack.postgres import EmbeddedPostgres

TABLES = {"tasks", "subtasks", "task_events", "blobs", "schema_migrations"}


def _fresh(postgres_server: EmbeddedPostgres) -> str:
    return postgres_server.create_database(f"migrate_{uuid.uuid4().hex[:8]}")


async def test_migrations_apply_once_and_are_recorded(postgres_server: EmbeddedPostgres) -> None:
    url = _fresh(postgres_server)
    versions = [version for version, _ in bundled_migrations()]
    assert versions and versions == sorted(versions)

    assert await migrate(url) == versions
    assert await migrate(url) == []  # idempotent: nothing left to apply

    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT version, applied_at FROM schema_migrations ORDER BY version"
        )
        tables = {
            r["tablename"]
            for r in await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        }
    finally:
        await connection.close()
    assert [r["version"] for r in rows] == versions
    assert all(r["applied_at"] is not None for r in rows)
    assert TABLES <= tables


async def test_concurrent_migrators_apply_each_version_once(
    postgres_server: EmbeddedPostgres,
) -> None:
    url = _fresh(postgres_server)
    results = await asyncio.gather(*(migrate(url) for _ in range(4)))
    applied = [version for result in results for version in result]
    assert sorted(applied) == [version for version, _ in bundled_migrations()]


async def test_pool_round_trips_json_columns(database_url: str) -> None:
    pool = await create_pool(database_url, max_size=2)
    try:
        await pool.execute(
            "INSERT INTO tasks (id, description, status, options, created_at, updated_at)"
            " VALUES ('task-json', 'd', 'pending', $1, now(), now())",
            {"max_parallel": 3, "tags": ["a", "b"]},
        )
        options = await pool.fetchval("SELECT options FROM tasks WHERE id = 'task-json'")
    finally:
        await pool.close()
    assert options == {"max_parallel": 3, "tags": ["a", "b"]}
