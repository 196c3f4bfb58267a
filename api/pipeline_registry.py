"""The pipeline registry in Postgres (`pipelines` table): register, look up, list.

A version, once registered, never changes: registering the same definition again answers the
stored one, a different definition under a taken `name@version` is a conflict. Without a
`version` the definition gets the next integer, unless it equals the latest version (then
that one is answered). Registrations of one name are serialised by an advisory lock, so two
concurrent ones cannot both take the same next integer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from mahsm.api.deps import ApiError
from mahsm.api.read_model import guarded
from mahsm.contracts.pipeline import Pipeline

QUERY_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class StoredPipeline:
    """One registered version."""

    pipeline: Pipeline
    version: str
    created_at: datetime
    created_by: str | None


def digest(pipeline: Pipeline) -> str:
    """SHA-256 of the definition's canonical JSON, its `version` left out."""
    body = pipeline.model_dump(mode="json", exclude={"version"})
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _stored(row: asyncpg.Record) -> StoredPipeline:
    return StoredPipeline(
        pipeline=Pipeline.model_validate(row["definition"]),
        version=row["version"],
        created_at=row["created_at"],
        created_by=row["created_by"],
    )


def conflict(name: str, version: str) -> ApiError:
    """409: `name@version` is registered with another definition."""
    return ApiError(
        409,
        code="pipeline_version_exists",
        message=f"pipeline '{name}@{version}' is already registered with a different"
        " definition; registered versions never change. Give a new `version`, or omit it"
        " to get the next number.",
        details={"name": name, "version": version},
    )


async def register(
    pool: asyncpg.Pool, pipeline: Pipeline, *, created_by: str | None
) -> tuple[StoredPipeline, bool]:
    """Register `pipeline`; returns the stored version and whether it was created now.

    Raises:
        ApiError: 409 when its `name@version` holds a different definition.
    """
    name, wanted = pipeline.name, pipeline.version
    sent = digest(pipeline)

    async def write() -> tuple[StoredPipeline, bool]:
        async with pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "SELECT pg_advisory_xact_lock(hashtext('mahsm.pipelines:' || $1))", name
            )
            if wanted is not None:
                row = await connection.fetchrow(
                    "SELECT * FROM pipelines WHERE name = $1 AND version = $2", name, wanted
                )
                if row is not None:
                    if row["digest"] != sent:
                        raise conflict(name, wanted)
                    return _stored(row), False
                version = wanted
            else:
                row = await connection.fetchrow(
                    "SELECT * FROM pipelines WHERE name = $1 ORDER BY seq DESC LIMIT 1", name
                )
                if row is not None and row["digest"] == sent:
                    return _stored(row), False
                highest = await connection.fetchval(
                    "SELECT max(version::bigint) FROM pipelines"
                    " WHERE name = $1 AND version ~ '^[0-9]{1,18}$'",
                    name,
                )
                version = str((highest or 0) + 1)
            stored = pipeline.model_copy(update={"version": version})
            row = await connection.fetchrow(
                "INSERT INTO pipelines (name, version, definition, digest, description,"
                " created_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
                name,
                version,
                stored.model_dump(mode="json"),
                sent,
                pipeline.description,
                created_by,
                timeout=QUERY_TIMEOUT_S,
            )
            assert row is not None  # INSERT ... RETURNING answers the row
            return _stored(row), True

    return await guarded(write)


async def find(pool: asyncpg.Pool, name: str, version: str | None) -> StoredPipeline | None:
    """`name@version`, or the latest version of `name` when `version` is None."""

    async def read() -> asyncpg.Record | None:
        if version is None:
            return await pool.fetchrow(
                "SELECT * FROM pipelines WHERE name = $1 ORDER BY seq DESC LIMIT 1",
                name,
                timeout=QUERY_TIMEOUT_S,
            )
        return await pool.fetchrow(
            "SELECT * FROM pipelines WHERE name = $1 AND version = $2",
            name,
            version,
            timeout=QUERY_TIMEOUT_S,
        )

    row = await guarded(read)
    return _stored(row) if row is not None else None


async def versions(pool: asyncpg.Pool, name: str) -> list[dict[str, Any]]:
    """Every version of `name`, newest first: version, created_at, created_by."""

    async def read() -> list[asyncpg.Record]:
        return list(
            await pool.fetch(
                "SELECT version, created_at, created_by FROM pipelines WHERE name = $1"
                " ORDER BY seq DESC",
                name,
                timeout=QUERY_TIMEOUT_S,
            )
        )

    return [dict(row) for row in await guarded(read)]


async def names(pool: asyncpg.Pool, *, after: str | None, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` names after `after`, alphabetically, each with its latest version."""

    async def read() -> list[asyncpg.Record]:
        return list(
            await pool.fetch(
                "SELECT DISTINCT ON (name) name, version, description, created_at,"
                " count(*) OVER (PARTITION BY name) AS versions FROM pipelines"
                " WHERE $1::text IS NULL OR name > $1 ORDER BY name, seq DESC LIMIT $2",
                after,
                limit,
                timeout=QUERY_TIMEOUT_S,
            )
        )

    return [dict(row) for row in await guarded(read)]


async def known_names(pool: asyncpg.Pool, *, shown: int = 20) -> str:
    """The registered names for an error message: up to `shown`, alphabetically."""
    rows = await names(pool, after=None, limit=shown + 1)
    listed = ", ".join(row["name"] for row in rows[:shown])
    if not rows:
        return "none is registered yet"
    more = " and more (GET /pipelines)" if len(rows) > shown else ""
    return f"registered: {listed}{more}"
