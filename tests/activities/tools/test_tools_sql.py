from __future__ import annotations

import json
from collections.abc import Callable

import asyncpg
import pytest

from mahsm.activities.tools import ToolActivities, ToolContext, ToolError
from mahsm.activities.tools.sql import MAX_ROWS, NOT_CONFIGURED, check_read_only, sql_query
from mahsm.contracts.tools import ToolInvocation
from mahsm.settings import Settings, SettingsError, load_settings
from tests.activities.tools.conftest import AgentsDatabase

MakeContext = Callable[..., ToolContext]


@pytest.fixture
def context(
    make_context: MakeContext, db_pool: asyncpg.Pool, sql_pool: asyncpg.Pool
) -> ToolContext:
    """A context like the worker's: the MAHSM pool and, apart, the agents' SQL pool."""
    return make_context(pool=db_pool, sql_pool=sql_pool)


async def test_the_tool_reads_its_own_database_and_cannot_see_mahsms(
    context: ToolContext, db_pool: asyncpg.Pool, agents_database: AgentsDatabase
) -> None:
    await db_pool.execute(
        "INSERT INTO shared_state (task_id, key, value) VALUES ('other-user-task', 'k', '1')"
    )
    assert await db_pool.fetchval("SELECT to_regclass('tasks') IS NOT NULL")  # MAHSM's tables
    where = json.loads(await sql_query(context, "SELECT current_database(), current_user"))
    assert where["rows"] == [[agents_database.name, agents_database.reader]]
    customers = json.loads(await sql_query(context, "SELECT id, name FROM customers ORDER BY id"))
    assert customers["rows"] == [[1, "Ada"], [2, "Grace"]]
    for table in ("tasks", "subtasks", "blobs", "shared_state", "tool_effects"):
        with pytest.raises(ToolError, match=f'UndefinedTableError: relation "{table}"'):
            await sql_query(context, f"SELECT * FROM {table}")
        found = json.loads(await sql_query(context, f"SELECT to_regclass('{table}')"))
        assert found["rows"] == [[None]]
    with pytest.raises(ToolError, match="InsufficientPrivilegeError"):
        await sql_query(context, "SELECT value FROM secrets")  # no grant: the role decides
    with pytest.raises(ToolError, match="InsufficientPrivilegeError"):
        await sql_query(context, "SELECT rolpassword FROM pg_authid")  # not a superuser


async def test_without_a_sql_pool_the_tool_refuses_and_never_uses_the_mahsm_pool(
    make_context: MakeContext,
    db_pool: asyncpg.Pool,
    make_activities: Callable[..., ToolActivities],
    make_invocation: Callable[..., ToolInvocation],
) -> None:
    unconfigured = make_context(pool=db_pool)  # the MAHSM pool is there, the SQL pool is not
    with pytest.raises(ToolError) as caught:
        await sql_query(unconfigured, "SELECT count(*) FROM tasks")
    assert str(caught.value) == NOT_CONFIGURED
    assert "set MAHSM_SQL_TOOL_DATABASE_URL to a database agents may read" in NOT_CONFIGURED
    outcome = await make_activities().run(
        make_invocation("sql_query", '{"query": "SELECT * FROM tasks"}'),
        idempotency_key="wf:run:sql-unconfigured",
    )
    assert outcome.is_error and outcome.content == f"Tool 'sql_query' failed: {NOT_CONFIGURED}"


async def test_the_activity_passes_its_sql_pool_to_the_tool(
    make_activities: Callable[..., ToolActivities],
    make_invocation: Callable[..., ToolInvocation],
    db_pool: asyncpg.Pool,
    sql_pool: asyncpg.Pool,
    agents_database: AgentsDatabase,
) -> None:
    outcome = await make_activities(sql_pool=sql_pool).run(
        make_invocation("sql_query", '{"query": "SELECT current_database()"}'),
        idempotency_key="wf:run:sql-configured",
    )
    assert not outcome.is_error and outcome.content is not None
    assert json.loads(outcome.content)["rows"] == [[agents_database.name]]
    with pytest.raises(ValueError, match="must not be the MAHSM pool"):
        make_activities(sql_pool=db_pool)


def test_the_setting_must_be_a_postgres_url_other_than_mahsms() -> None:
    url = "postgresql://reader@db.internal:5432/analytics"
    settings = load_settings(_env_file=None, sql_tool_database_url=url)
    assert settings.sql_tool_database_url is not None
    assert settings.sql_tool_database_url.get_secret_value() == url
    assert load_settings(_env_file=None).sql_tool_database_url is None
    with pytest.raises(SettingsError, match="MAHSM_SQL_TOOL_DATABASE_URL: .*postgresql://"):
        load_settings(_env_file=None, sql_tool_database_url="mysql://reader@db/analytics")
    with pytest.raises(SettingsError, match="MAHSM_SQL_TOOL_DATABASE_URL: .*MAHSM_DATABASE_URL"):
        load_settings(_env_file=None, database_url=url, sql_tool_database_url=url)


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
    explain = json.loads(await sql_query(context, "EXPLAIN SELECT * FROM customers"))
    assert explain["columns"] == ["QUERY PLAN"] and explain["rows"]


async def test_row_limit_truncates_and_says_so(context: ToolContext) -> None:
    result = json.loads(await sql_query(context, "SELECT g FROM generate_series(1, 1000) g"))
    assert result["row_count"] == MAX_ROWS == len(result["rows"]) == 200
    assert result["rows"][-1] == [200]
    assert result["truncated"] is True and "only the first 200 rows" in result["note"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("INSERT INTO scratch (note) VALUES ('x')", "start with"),
        ("DROP TABLE customers", "start with"),
        ("SELECT 1; DROP TABLE customers", "only one statement"),
        ("SELECT 1;\nDELETE FROM customers;", "only one statement"),
        (
            "WITH gone AS (DELETE FROM customers RETURNING id) SELECT count(*) FROM gone",
            "'DELETE' is not allowed",
        ),
        (
            "WITH x AS (INSERT INTO scratch VALUES ('x') RETURNING 1) SELECT 1",
            "'INSERT' is not allowed",
        ),
        ("SELECT * INTO stolen FROM customers", "'INTO' is not allowed"),
        ("EXPLAIN ANALYZE UPDATE customers SET name = ''", "'UPDATE' is not allowed"),
        ("SELECT * FROM customers FOR UPDATE", "'UPDATE' is not allowed"),
        ("SET statement_timeout = 0", "start with"),
        ("COPY customers TO '/tmp/x'", "start with"),
        ("SELECT pg_read_file('/etc/passwd')", "pg_read_file()"),
        ("SELECT \"pg_read_file\"('/etc/passwd')", "pg_read_file()"),
        ("SELECT pg_catalog.set_config('statement_timeout', '0', true)", "set_config()"),
        ("SELECT query_to_xml('delete from customers', true, true, '')", "query_to_xml()"),
        ("SELECT pg_terminate_backend(1)", "pg_terminate_backend()"),
        ("SELECT U&'\\0041'", "unicode escapes"),
        ("SELECT 'unterminated", "unterminated"),
        ("SELECT 1 /* open", "unterminated"),
        ("  ;  ", "empty"),
    ],
)
async def test_anything_but_one_read_only_statement_is_refused(
    context: ToolContext, agents_admin_pool: asyncpg.Pool, query: str, message: str
) -> None:
    with pytest.raises(ToolError) as caught:
        await sql_query(context, query)
    assert message in str(caught.value)
    admin = agents_admin_pool
    assert await admin.fetchval("SELECT to_regclass('customers') IS NOT NULL")
    assert await admin.fetch("SELECT id, name FROM customers ORDER BY id") == [
        (1, "Ada"),
        (2, "Grace"),
    ]
    assert await admin.fetchval("SELECT count(*) FROM scratch") == 0


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
    context: ToolContext, agents_admin_pool: asyncpg.Pool
) -> None:
    # The reader may INSERT into scratch: only the read-only transaction stands in the way.
    await agents_admin_pool.execute(
        "CREATE OR REPLACE FUNCTION sneaky_write() RETURNS int LANGUAGE sql AS"
        " $$ INSERT INTO scratch (note) VALUES ('sneaky') RETURNING 1 $$;"
        "GRANT EXECUTE ON FUNCTION sneaky_write() TO PUBLIC"
    )
    with pytest.raises(ToolError, match="read-only"):
        await sql_query(context, "SELECT sneaky_write()")
    assert await agents_admin_pool.fetchval("SELECT count(*) FROM scratch") == 0


async def test_statement_timeout_cancels_slow_queries(
    make_context: MakeContext,
    db_pool: asyncpg.Pool,
    sql_pool: asyncpg.Pool,
    settings_with: Callable[..., Settings],
) -> None:
    context = make_context(
        pool=db_pool, sql_pool=sql_pool, settings=settings_with(tool_timeout_s=0.3)
    )
    shown = json.loads(await sql_query(context, "SHOW statement_timeout"))
    assert shown["rows"] == [["270ms"]]  # SET LOCAL: 90% of the tool timeout
    with pytest.raises(ToolError, match=r"cancelled after 0.27 s \(statement_timeout\)"):
        await sql_query(context, "SELECT pg_sleep(5)")
    # The pool has one connection: the one that ran the query keeps no timeout and stays
    # read-only by default.
    assert await sql_pool.fetchval("SHOW statement_timeout") == "0"
    assert await sql_pool.fetchval("SHOW default_transaction_read_only") == "on"


async def test_sql_errors_are_reported(context: ToolContext) -> None:
    with pytest.raises(ToolError, match='UndefinedTableError: relation "nope" does not exist'):
        await sql_query(context, "SELECT * FROM nope")
