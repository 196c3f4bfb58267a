from __future__ import annotations

import json
from collections.abc import Callable

import asyncpg
import pytest

from activities.tools import ToolContext, ToolError
from activities.tools.sql import MAX_ROWS, check_read_only, sql_query
from mahsm.settings import Settings

MakeContext = Callable[..., ToolContext]


@pytest.fixture
def context(make_context: MakeContext, db_pool: asyncpg.Pool) -> ToolContext:
    return make_context(pool=db_pool)


async def test_select_returns_rows_as_json(context: ToolContext) -> None:
    result = json.loads(
        await sql_query(
            context,
            "SELECT 1 AS n, 'a;b' AS s, NULL AS z, '{\"k\": [1]}'::jsonb AS j,"
            " 2.50::numeric AS d, '\\xff00'::bytea AS b",
        )
    )
    assert result["columns"] == ["n", "s", "z", "j", "d", "b"]
    assert result["rows"] == [[1, "a;b", None, {"k": [1]}, "2.50", "ff00"]]
    assert result["row_count"] == 1 and result["truncated"] is False
    values = json.loads(await sql_query(context, "VALUES (1), (2)"))
    assert values["rows"] == [[1], [2]]
    cte = json.loads(await sql_query(context, "WITH x AS (SELECT 41 + 1 AS v) SELECT v FROM x;"))
    assert cte["rows"] == [[42]]
    explain = json.loads(await sql_query(context, "EXPLAIN SELECT * FROM blobs"))
    assert explain["columns"] == ["QUERY PLAN"] and explain["rows"]


async def test_row_limit_truncates_and_says_so(context: ToolContext) -> None:
    result = json.loads(await sql_query(context, "SELECT g FROM generate_series(1, 1000) g"))
    assert result["row_count"] == MAX_ROWS == len(result["rows"]) == 200
    assert result["rows"][-1] == [200]
    assert result["truncated"] is True and "only the first 200 rows" in result["note"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("INSERT INTO shared_state (task_id, key, value) VALUES ('t', 'k', '1')", "start with"),
        ("DROP TABLE blobs", "start with"),
        ("SELECT 1; DROP TABLE blobs", "only one statement"),
        ("SELECT 1;\nDELETE FROM blobs;", "only one statement"),
        (
            "WITH gone AS (DELETE FROM blobs RETURNING id) SELECT count(*) FROM gone",
            "'DELETE' is not allowed",
        ),
        (
            "WITH x AS (INSERT INTO shared_state VALUES ('t','k','1') RETURNING 1) SELECT 1",
            "'INSERT' is not allowed",
        ),
        ("SELECT * INTO stolen FROM blobs", "'INTO' is not allowed"),
        ("EXPLAIN ANALYZE UPDATE blobs SET size_bytes = 0", "'UPDATE' is not allowed"),
        ("SELECT * FROM blobs FOR UPDATE", "'UPDATE' is not allowed"),
        ("SET statement_timeout = 0", "start with"),
        ("COPY blobs TO '/tmp/x'", "start with"),
        ("SELECT pg_read_file('/etc/passwd')", "pg_read_file()"),
        ("SELECT \"pg_read_file\"('/etc/passwd')", "pg_read_file()"),
        ("SELECT pg_catalog.set_config('statement_timeout', '0', true)", "set_config()"),
        ("SELECT query_to_xml('delete from blobs', true, true, '')", "query_to_xml()"),
        ("SELECT pg_terminate_backend(1)", "pg_terminate_backend()"),
        ("SELECT U&'\\0041'", "unicode escapes"),
        ("SELECT 'unterminated", "unterminated"),
        ("SELECT 1 /* open", "unterminated"),
        ("  ;  ", "empty"),
    ],
)
async def test_anything_but_one_read_only_statement_is_refused(
    context: ToolContext, db_pool: asyncpg.Pool, query: str, message: str
) -> None:
    blobs_before = await db_pool.fetchval("SELECT count(*) FROM blobs")
    with pytest.raises(ToolError) as caught:
        await sql_query(context, query)
    assert message in str(caught.value)
    assert await db_pool.fetchval("SELECT to_regclass('blobs') IS NOT NULL")
    assert await db_pool.fetchval("SELECT count(*) FROM blobs") == blobs_before


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 'DELETE FROM blobs; DROP TABLE blobs' AS s",
        "SELECT 1 -- ; DROP TABLE blobs",
        "SELECT 1 /* ; DELETE /* nested */ FROM blobs */",
        "SELECT $$; DROP TABLE blobs$$ AS s",
        "SELECT $tag$ INSERT $tag$ AS s",
        "SELECT E'it\\'s; DROP' AS s",
        'SELECT 1 AS "update"',
        "SELECT updated_at, created_at FROM shared_state",
        "(SELECT 1)",
        "show statement_timeout",
    ],
)
def test_keywords_in_literals_comments_and_identifiers_are_not_statements(query: str) -> None:
    check_read_only(query)  # does not raise


async def test_read_only_transaction_stops_writes_the_lexical_check_cannot_see(
    context: ToolContext, db_pool: asyncpg.Pool
) -> None:
    await db_pool.execute(
        "CREATE OR REPLACE FUNCTION sneaky_write() RETURNS int LANGUAGE sql AS"
        " $$ INSERT INTO shared_state (task_id, key, value) VALUES ('t', 'sneaky', '1')"
        " RETURNING 1 $$"
    )
    with pytest.raises(ToolError, match="read-only"):
        await sql_query(context, "SELECT sneaky_write()")
    assert await db_pool.fetchval("SELECT count(*) FROM shared_state WHERE key = 'sneaky'") == 0


async def test_statement_timeout_cancels_slow_queries(
    make_context: MakeContext, db_pool: asyncpg.Pool, settings_with: Callable[..., Settings]
) -> None:
    context = make_context(pool=db_pool, settings=settings_with(tool_timeout_s=0.3))
    shown = json.loads(await sql_query(context, "SHOW statement_timeout"))
    assert shown["rows"] == [["270ms"]]  # SET LOCAL: 90% of the tool timeout
    with pytest.raises(ToolError, match=r"cancelled after 0.27 s \(statement_timeout\)"):
        await sql_query(context, "SELECT pg_sleep(5)")
    assert await db_pool.fetchval("SHOW statement_timeout") == "0"  # not leaked to the pool


async def test_sql_errors_are_reported(context: ToolContext) -> None:
    with pytest.raises(ToolError, match='UndefinedTableError: relation "nope" does not exist'):
        await sql_query(context, "SELECT * FROM nope")
