"""The `sql_query` tool: read-only SQL on the agents' database, bounded in time, rows and bytes.

It runs on `ToolContext.sql_pool`, a pool on the database named by
`MAHSM_SQL_TOOL_DATABASE_URL`, and never on the MAHSM database (`ToolContext.pool`), which
holds every user's tasks, subtasks, blobs, shared state and tool effects. A worker without
that setting has no SQL pool and the tool answers the model that it is not configured.

Three layers keep it read-only: a lexical check (one statement, starting with SELECT, WITH,
VALUES, EXPLAIN or SHOW, with no data-modifying keyword anywhere and no call of a function
that reads server files, signals backends or runs SQL from a string), a `BEGIN READ ONLY`
transaction (in sessions that are also read-only by default), and a prepared statement
(which cannot hold two statements). The lexical check is defence in depth for clearer
errors; the transaction is the guarantee for writes. What the tool can *read* is decided by
the grants of the role in that URL: give it a least-privilege role (docs/tools.md).

Rows are fetched a few at a time and serialized as they come; reading stops once the
result would pass `MAHSM_TOOL_OUTPUT_MAX_BYTES`, so a huge result never sits in memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import asyncpg
from pydantic_core import to_json

from mahsm.activities.tools.failures import is_infrastructure_error
from mahsm.activities.tools.output import cut_utf8, data_budget, truncation_note
from mahsm.activities.tools.registry import ToolContext, ToolError, tool
from mahsm.contracts.task import Capability

NOT_CONFIGURED = (
    "sql_query is not configured on this worker: set MAHSM_SQL_TOOL_DATABASE_URL to a"
    " database agents may read"
)
SQL_POOL_MAX = 4
MAX_ROWS = 200
FETCH_BATCH = 8
MAX_STATEMENT_TIMEOUT_S = 30.0
MAX_QUERY_CHARS = 20_000

ALLOWED_FIRST_WORDS = frozenset({"SELECT", "WITH", "VALUES", "EXPLAIN", "SHOW"})
FORBIDDEN_WORDS = frozenset(
    {
        "INSERT", "UPDATE", "DELETE", "MERGE", "INTO", "CREATE", "DROP", "ALTER", "TRUNCATE",
        "GRANT", "REVOKE", "COPY", "EXECUTE", "DECLARE", "REFRESH", "VACUUM", "REINDEX",
        "CLUSTER", "DO",
    }
)  # fmt: skip
DENIED_FUNCTIONS = frozenset(
    {
        "set_config", "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf",
        "pg_rotate_logfile", "pg_stat_file", "pg_notify", "pg_switch_wal", "pg_promote",
        "pg_backup_start", "pg_backup_stop", "ts_stat", "ts_rewrite", "nextval", "setval",
        "txid_current", "pg_current_xact_id", "pg_import_system_collations",
    }
)  # fmt: skip
DENIED_FUNCTION_PREFIXES = (
    "pg_read_", "pg_ls_", "pg_file", "lo_", "dblink", "pg_advisory", "pg_create_",
    "pg_drop_", "pg_replication_", "pg_logical_", "query_to_xml", "table_to_xml",
    "schema_to_xml", "database_to_xml", "cursor_to_xml",
)  # fmt: skip

Token = tuple[str, str]  # (kind, text): kind is "word", "ident" (quoted) or "punct"


def _skip_quoted(sql: str, start: int, quote: str, *, backslashes: bool = False) -> int:
    """Index just past the literal opened at `start`; doubled quotes are escapes."""
    i = start + 1
    while i < len(sql):
        if backslashes and sql[i] == "\\":
            i += 2
            continue
        if sql[i] == quote:
            if sql[i + 1 : i + 2] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    raise ToolError("the query has an unterminated quoted string or identifier")


def _skip_block_comment(sql: str, start: int) -> int:
    depth, i = 0, start
    while i < len(sql):
        pair = sql[i : i + 2]
        if pair == "/*":
            depth, i = depth + 1, i + 2
        elif pair == "*/":
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    raise ToolError("the query has an unterminated /* comment")


def _dollar_tag(sql: str, start: int) -> str | None:
    end = sql.find("$", start + 1)
    if end < 0:
        return None
    tag = sql[start : end + 1]
    body = tag[1:-1]
    if body == "" or ((body[0].isalpha() or body[0] == "_") and body.replace("_", "a").isalnum()):
        return tag
    return None


def tokenize(sql: str) -> list[Token]:
    """Words, quoted identifiers and punctuation of `sql`; comments and literals are dropped."""
    tokens: list[Token] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch.isspace():
            i += 1
        elif sql.startswith("--", i):
            newline = sql.find("\n", i)
            i = n if newline < 0 else newline + 1
        elif sql.startswith("/*", i):
            i = _skip_block_comment(sql, i)
        elif ch == "'":
            i = _skip_quoted(sql, i, "'")
        elif ch == '"':
            end = _skip_quoted(sql, i, '"')
            tokens.append(("ident", sql[i + 1 : end - 1].replace('""', '"')))
            i = end
        elif ch == "$" and (tag := _dollar_tag(sql, i)) is not None:
            close = sql.find(tag, i + len(tag))
            if close < 0:
                raise ToolError("the query has an unterminated $$ string")
            i = close + len(tag)
        elif ch.isalpha() or ch == "_":
            j = i + 1
            while j < n and (sql[j].isalnum() or sql[j] in "_$"):
                j += 1
            word = sql[i:j]
            if word.upper() == "U" and sql[j : j + 2] in ("&'", '&"'):
                raise ToolError("U&'...' unicode escapes are not supported by sql_query")
            if word.upper() == "E" and sql[j : j + 1] == "'":
                i = _skip_quoted(sql, j, "'", backslashes=True)
                continue
            tokens.append(("word", word))
            i = j
        elif ch.isdigit():
            while i < n and (sql[i].isalnum() or sql[i] in "._"):
                i += 1
        else:
            tokens.append(("punct", ch))
            i += 1
    return tokens


def check_read_only(query: str) -> None:
    """Refuse anything but one read-only statement; the `ToolError` says what to change.

    Args:
        query: The SQL text from the model.
    """
    if len(query) > MAX_QUERY_CHARS:
        raise ToolError(f"the query is longer than {MAX_QUERY_CHARS} characters")
    statements: list[list[Token]] = [[]]
    for token in tokenize(query):
        if token == ("punct", ";"):
            statements.append([])
        else:
            statements[-1].append(token)
    statements = [s for s in statements if s]
    if not statements:
        raise ToolError("the query is empty")
    if len(statements) > 1:
        raise ToolError("only one statement per call is allowed; remove the ';' between them")
    tokens = statements[0]
    first = next((text for kind, text in tokens if kind != "punct" or text != "("), "")
    if first.upper() not in ALLOWED_FIRST_WORDS:
        allowed = ", ".join(sorted(ALLOWED_FIRST_WORDS))
        raise ToolError(f"sql_query is read-only: a query must start with one of {allowed}")
    for index, (kind, text) in enumerate(tokens):
        if kind == "word" and text.upper() in FORBIDDEN_WORDS:
            raise ToolError(f"sql_query is read-only: '{text.upper()}' is not allowed")
        follows = tokens[index + 1 : index + 2]
        if kind != "punct" and follows == [("punct", "(")]:
            name = text.lower()
            if name in DENIED_FUNCTIONS or name.startswith(DENIED_FUNCTION_PREFIXES):
                raise ToolError(f"sql_query does not allow the function {name}()")


async def _init_connection(connection: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def create_sql_pool(database_url: str, *, max_size: int = SQL_POOL_MAX) -> asyncpg.Pool:
    """The worker's pool on the database `sql_query` reads (`MAHSM_SQL_TOOL_DATABASE_URL`).

    Small, and lazy (no connection until the first query), so a worker starts and serves its
    other work while that database is unreachable. Its sessions are read-only by default.

    Args:
        database_url: A postgresql:// URL; never the MAHSM database.
        max_size: At most this many connections; further queries wait (within their timeout).
    """
    pool = await asyncpg.create_pool(
        database_url,
        min_size=0,
        max_size=max_size,
        init=_init_connection,
        server_settings={
            "default_transaction_read_only": "on",
            "application_name": "mahsm-sql-tool",
        },
    )
    if pool is None:  # asyncpg types the pool as optional
        raise RuntimeError("asyncpg returned no pool")
    return pool


def _json(value: object) -> bytes:
    return to_json(value, fallback=str, bytes_mode="hex")


@dataclass
class _Rows:
    """What `_read_rows` read: whole rows, and why it stopped."""

    rows: list[list[object]] = field(default_factory=list)
    shown_bytes: int = 0
    more_rows: bool = False
    partial_row: str | None = None


async def _read_rows(cursor: asyncpg.cursor.Cursor[asyncpg.Record], budget: int) -> _Rows:
    """Fetch up to `MAX_ROWS` rows, a batch at a time, stopping before `budget` bytes of JSON.

    The first row that does not fit is kept as the head of its JSON text (`partial_row`), so
    the model sees what made the result large.
    """
    read = _Rows()
    while True:
        batch = await cursor.fetch(FETCH_BATCH)
        if not batch:
            return read
        for record in batch:
            if len(read.rows) == MAX_ROWS:
                read.more_rows = True
                return read
            values = list(record.values())
            encoded = _json(values)
            if read.shown_bytes + len(encoded) + 1 > budget:
                # Half the room left: escaping in the final JSON may double the text's size.
                read.partial_row = cut_utf8(encoded, max(0, budget - read.shown_bytes) // 2)
                return read
            read.rows.append(values)
            read.shown_bytes += len(encoded) + 1


def _statement_timeout_ms(context: ToolContext) -> int:
    seconds = min(MAX_STATEMENT_TIMEOUT_S, context.settings.tool_timeout_s * 0.9)
    return max(100, int(seconds * 1000))


@tool(capabilities=[Capability.DATABASE_OPERATIONS, Capability.DATA_ANALYSIS])
async def sql_query(context: ToolContext, query: str) -> str:
    """Run one read-only SQL query (PostgreSQL) and return the rows as JSON.

    Only SELECT, WITH, VALUES, EXPLAIN and SHOW are allowed; at most 200 rows (and a
    bounded number of bytes) are returned and long-running queries are cancelled.

    Args:
        context: The call's context (not part of the schema).
        query: A single SQL statement, e.g. "SELECT id, name FROM customers LIMIT 10".
    """
    pool = context.sql_pool
    if pool is None:  # never fall back to context.pool: that is every user's MAHSM data
        raise ToolError(NOT_CONFIGURED)
    check_read_only(query)
    timeout_ms = _statement_timeout_ms(context)
    budget = data_budget(context.settings.tool_output_max_bytes)
    try:
        async with pool.acquire() as connection, connection.transaction(readonly=True):
            await connection.execute(f"SET LOCAL statement_timeout = {timeout_ms}")
            statement = await connection.prepare(query)
            columns = [attribute.name for attribute in statement.get_attributes()]
            rows = await _read_rows(await statement.cursor(), budget - len(_json(columns)))
    except asyncpg.QueryCanceledError:
        raise ToolError(
            f"the query was cancelled after {timeout_ms / 1000:g} s (statement_timeout);"
            " make it cheaper, e.g. add a WHERE clause or a LIMIT"
        ) from None
    except asyncpg.ReadOnlySQLTransactionError as error:
        raise ToolError(f"sql_query is read-only: {error}") from None
    except asyncpg.PostgresError as error:
        if is_infrastructure_error(error):
            raise  # the database is unreachable or restarting: Temporal retries the activity
        raise ToolError(f"the query failed: {type(error).__name__}: {error}") from None
    result: dict[str, object] = {
        "columns": columns,
        "rows": rows.rows,
        "row_count": len(rows.rows),
        "truncated": rows.more_rows or rows.partial_row is not None,
    }
    if rows.partial_row is not None:
        result["partial_row"] = rows.partial_row
        result["note"] = truncation_note(
            rows.shown_bytes,
            None,
            f"row {len(rows.rows) + 1} did not fit (its start is in partial_row); select fewer"
            " or narrower columns, filter with WHERE, or page with LIMIT/OFFSET",
        )
    elif rows.more_rows:
        result["note"] = f"only the first {MAX_ROWS} rows are shown; add LIMIT/OFFSET or filter"
    return to_json(result, fallback=str, bytes_mode="hex").decode("utf-8")
