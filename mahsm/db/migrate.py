"""Versioned SQL migrations, applied once each and in order, recorded in `schema_migrations`."""

from __future__ import annotations

from importlib import resources

import asyncpg
import structlog

log = structlog.get_logger(__name__)

# Any constant works; it serialises concurrent migrators (API and workers starting together).
_MIGRATION_LOCK_ID = 7_240_517


def bundled_migrations() -> list[tuple[str, str]]:
    """(version, sql) of every migration shipped with MAHSM, in order."""
    folder = resources.files("mahsm.db") / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


async def apply_migrations(connection: asyncpg.Connection) -> list[str]:
    """Apply the migrations this database lacks; returns the versions applied now."""
    applied_now: list[str] = []
    await connection.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_ID)
    try:
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        rows = await connection.fetch("SELECT version FROM schema_migrations")
        done = {r["version"] for r in rows}
        for version, sql in bundled_migrations():
            if version in done:
                continue
            async with connection.transaction():
                await connection.execute(sql)
                await connection.execute(
                    "INSERT INTO schema_migrations (version) VALUES ($1)", version
                )
            log.debug("migration applied", version=version)  # callers report the list
            applied_now.append(version)
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK_ID)
    return applied_now


async def migrate(database_url: str) -> list[str]:
    """Open one connection to `database_url` and apply pending migrations."""
    connection = await asyncpg.connect(database_url)
    try:
        return await apply_migrations(connection)
    finally:
        await connection.close()
