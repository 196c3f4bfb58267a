"""Shared state tools: a durable key/value store per task, in the `shared_state` table.

Agents of the same task use it to hand each other facts that do not fit the DAG's
outputs (counters, lists of findings, decisions). Values are any JSON.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field
from pydantic_core import to_json

from mahsm.activities.tools.registry import ToolContext, ToolError, tool

MAX_VALUE_BYTES = 1024 * 1024
Key = Annotated[str, Field(min_length=1, max_length=200)]


@tool(capabilities=None)
async def get_shared_state(context: ToolContext, key: Key) -> str:
    """Read a value that an agent of this task stored with set_shared_state.

    Returns a JSON object {"key", "found", "value"}; "found" is false when nothing is stored.

    Args:
        context: The call's context (not part of the schema).
        key: The name the value was stored under.
    """
    row = await context.pool.fetchrow(
        "SELECT value FROM shared_state WHERE task_id = $1 AND key = $2", context.task_id, key
    )
    found = row is not None
    value = row["value"] if row is not None else None
    return to_json({"key": key, "found": found, "value": value}).decode("utf-8")


@tool(capabilities=None, side_effects=True)
async def set_shared_state(context: ToolContext, key: Key, value: Any) -> str:
    """Store a JSON value under a key, visible to every agent of this task (up to 1 MiB).

    Replaces any value already stored under the key.

    Args:
        context: The call's context (not part of the schema).
        key: A name for the value, e.g. "findings".
        value: Any JSON value: object, array, string, number, boolean or null.
    """
    encoded = to_json(value).decode("utf-8")
    size = len(encoded.encode("utf-8"))
    if size > MAX_VALUE_BYTES:
        raise ToolError(f"the value is {size} bytes as JSON; the limit is {MAX_VALUE_BYTES}")
    await context.pool.execute(
        "INSERT INTO shared_state (task_id, key, value) VALUES ($1, $2, $3::text::jsonb)"
        " ON CONFLICT (task_id, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
        context.task_id,
        key,
        encoded,
    )
    return f"stored '{key}' ({size} bytes of JSON)"
