"""The asyncpg pool: created once per process, JSON columns decoded to Python values."""

from __future__ import annotations

import json

import asyncpg


async def _init_connection(connection: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def _keep_session(_connection: asyncpg.Connection) -> None:
    """Reset nothing more: asyncpg has already rolled back an open transaction."""


async def create_pool(
    database_url: str, *, max_size: int = 10, session_reset: bool = True
) -> asyncpg.Pool:
    """A connection pool whose JSON/JSONB columns read and write Python values.

    Args:
        database_url: The database.
        max_size: Most connections open at once.
        session_reset: Reset the session (settings, advisory locks, LISTENs, cursors) each
            time a connection goes back to the pool: one more round trip per use. A pool whose
            users never change session state (the API's: plain queries and transactions, with
            transaction-scoped locks only) passes False; an open transaction is still rolled
            back either way.
    """
    pool = await asyncpg.create_pool(
        database_url,
        min_size=1,
        max_size=max_size,
        init=_init_connection,
        reset=None if session_reset else _keep_session,
    )
    if pool is None:  # asyncpg types the pool as optional
        raise RuntimeError("asyncpg returned no pool")
    return pool
