"""The asyncpg pool: created once per process, JSON columns decoded to Python values."""

from __future__ import annotations

import json

import asyncpg


async def _init_connection(connection: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def create_pool(database_url: str, *, max_size: int = 10) -> asyncpg.Pool:
    """A connection pool whose JSON/JSONB columns read and write Python values."""
    pool = await asyncpg.create_pool(
        database_url, min_size=1, max_size=max_size, init=_init_connection
    )
    if pool is None:  # asyncpg types the pool as optional
        raise RuntimeError("asyncpg returned no pool")
    return pool
