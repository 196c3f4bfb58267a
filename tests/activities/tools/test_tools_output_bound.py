"""Every tool result is bounded in bytes; SQL stops reading past the bound; blobs are capped."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable

import asyncpg
import pytest

from mahsm.activities.blobs import BlobStore, BlobTooLargeError
from mahsm.activities.tools import ToolActivities, ToolContext, default_registry
from mahsm.activities.tools.sql import sql_query
from mahsm.contracts.tools import ToolInvocation
from mahsm.settings import Settings

MakeContext = Callable[..., ToolContext]
BOUND = 64 * 1024
# 200 rows of 50 kB: 10 MB of result, 150 times the bound.
HUGE_QUERY = "SELECT g AS n, repeat('x', 50000) AS filler FROM generate_series(1, 200) AS g"


async def test_a_query_returning_far_more_than_the_bound_is_cut_while_reading(
    make_context: MakeContext,
    settings_with: Callable[..., Settings],
    db_pool: asyncpg.Pool,
    sql_pool: asyncpg.Pool,
) -> None:
    context = make_context(
        pool=db_pool, sql_pool=sql_pool, settings=settings_with(tool_output_max_bytes=BOUND)
    )
    await sql_query(context, "SELECT 1")  # warm the pool: its connection is not the query's
    tracemalloc.start()
    try:
        text = await sql_query(context, HUGE_QUERY)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(text.encode()) <= BOUND
    # Only a few rows were ever held (a fetch batch), not the 10 MB result.
    assert peak < 3 * 1024 * 1024, f"peak {peak} bytes while reading"
    result = json.loads(text)
    assert result["truncated"] is True
    assert 0 < result["row_count"] == len(result["rows"]) < 200
    assert [row[0] for row in result["rows"]] == list(range(1, result["row_count"] + 1))
    assert result["partial_row"].startswith(f'[{result["row_count"] + 1},"xxx')
    assert result["note"].startswith("[output truncated at ")
    assert "bytes of more; row " in result["note"] and "LIMIT/OFFSET" in result["note"]


async def test_the_activity_stores_and_returns_no_more_than_the_bound(
    make_activities: Callable[..., ToolActivities],
    make_invocation: Callable[..., ToolInvocation],
    db_pool: asyncpg.Pool,
    sql_pool: asyncpg.Pool,
) -> None:
    activities = make_activities(sql_pool=sql_pool, tool_output_max_bytes=BOUND)
    before = await db_pool.fetchval("SELECT coalesce(max(size_bytes), 0) FROM blobs")
    outcome = await activities.run(
        make_invocation("sql_query", json.dumps({"query": HUGE_QUERY})), idempotency_key="k-sql"
    )
    assert not outcome.is_error
    assert outcome.content_ref is None  # bounded to 64 kB: small enough to travel inline
    assert outcome.content is not None and len(outcome.content.encode()) <= BOUND
    largest = await db_pool.fetchval("SELECT coalesce(max(size_bytes), 0) FROM blobs")
    assert largest == before  # nothing of it was stored


async def test_any_tool_result_is_cut_at_the_bound_with_a_note(
    make_activities: Callable[..., ToolActivities],
    make_invocation: Callable[..., ToolInvocation],
) -> None:
    registry = default_registry().copy()

    @registry.tool(capabilities=None)
    def chatty(times: int) -> str:
        """Return a lot of text.

        Args:
            times: How many kilobytes.
        """
        return "é" * (512 * times)

    activities = make_activities(registry, tool_output_max_bytes=BOUND)
    outcome = await activities.run(
        make_invocation("chatty", '{"times": 5000}'), idempotency_key="k-chatty"
    )
    assert outcome.content_ref is None and outcome.content is not None
    content = outcome.content
    assert len(content.encode()) <= BOUND
    head, _, note = content.rpartition("\n")
    assert set(head) == {"é"}  # cut on a character boundary
    assert note == (
        f"[output truncated at {len(head.encode())} bytes of {5000 * 1024}; ask for less:"
        " filter, select fewer fields or page]"
    )
    small = await activities.run(make_invocation("chatty", '{"times": 1}'), idempotency_key="k2")
    assert small.content == "é" * 512  # under the bound: untouched


async def test_blob_store_refuses_values_over_its_cap(db_pool: asyncpg.Pool) -> None:
    blobs = BlobStore(db_pool, max_bytes=64 * 1024)
    await blobs.put(b"x" * 64 * 1024)
    with pytest.raises(BlobTooLargeError) as caught:
        await blobs.put(b"y" * (64 * 1024 + 1))
    error = caught.value
    assert error.non_retryable and error.type == "BlobTooLarge"
    assert "65537 bytes is over the blob store's cap of 65536 bytes" in error.message
    assert "MAHSM_BLOB_MAX_BYTES" in error.message
    count = await db_pool.fetchval("SELECT count(*) FROM blobs WHERE size_bytes = 65537")
    assert count == 0
    settings = Settings(_env_file=None, blob_max_bytes=128 * 1024, claim_check_bytes=2048)
    configured = BlobStore.from_settings(db_pool, settings)
    assert (configured.max_bytes, configured.threshold_bytes) == (128 * 1024, 2048)
