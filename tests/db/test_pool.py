"""The pool's reset between uses: full by default, only the transaction when asked."""

from __future__ import annotations

import asyncpg

from mahsm.db.pool import create_pool


async def _leave_state_behind(pool: asyncpg.Pool) -> None:
    """Change a session setting, and leave a transaction open, then give the connection back."""
    connection = await pool.acquire()
    await connection.execute("SET application_name = 'left-behind'")
    await connection.execute("BEGIN")
    await connection.execute("CREATE TEMP TABLE IF NOT EXISTS scratch (x int)")
    await pool.release(connection)


async def _session(pool: asyncpg.Pool) -> tuple[str, bool]:
    async with pool.acquire() as connection:
        name = await connection.fetchval("SHOW application_name")
        scratch = await connection.fetchval("SELECT to_regclass('pg_temp.scratch') IS NOT NULL")
        return name, scratch


async def test_the_default_pool_resets_the_session(database_url: str) -> None:
    pool = await create_pool(database_url, max_size=1)
    try:
        await _leave_state_behind(pool)
        name, scratch = await _session(pool)
    finally:
        await pool.close()

    assert name != "left-behind"
    assert scratch is False  # the transaction was rolled back


async def test_without_session_reset_only_the_open_transaction_is_undone(
    database_url: str,
) -> None:
    # The API's pool: no reset round trip per use, since its code sets no session state.
    pool = await create_pool(database_url, max_size=1, session_reset=False)
    try:
        await _leave_state_behind(pool)
        name, scratch = await _session(pool)
    finally:
        await pool.close()

    assert name == "left-behind"  # no RESET ALL was sent
    assert scratch is False  # but the open transaction was still rolled back
