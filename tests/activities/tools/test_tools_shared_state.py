from __future__ import annotations

import json
from collections.abc import Callable

import asyncpg
import pytest

from mahsm.activities.tools import ToolArgumentsError, ToolContext, ToolError, default_registry
from mahsm.activities.tools.shared_state import MAX_VALUE_BYTES, get_shared_state, set_shared_state

MakeContext = Callable[..., ToolContext]


async def test_values_round_trip_per_task(make_context: MakeContext, db_pool: asyncpg.Pool) -> None:
    mine = make_context(task_id="task-ss-1", pool=db_pool)
    theirs = make_context(task_id="task-ss-2", pool=db_pool)
    value = {"findings": ["a", "b"], "count": 2, "ok": True, "ratio": 0.5, "none": None}
    size = len(json.dumps(value, separators=(",", ":")))
    assert (
        await set_shared_state(mine, "report", value) == f"stored 'report' ({size} bytes of JSON)"
    )
    got = json.loads(await get_shared_state(mine, "report"))
    assert got == {"key": "report", "found": True, "value": value}
    assert json.loads(await get_shared_state(theirs, "report"))["found"] is False
    await set_shared_state(mine, "report", "replaced")
    assert json.loads(await get_shared_state(mine, "report"))["value"] == "replaced"
    await set_shared_state(mine, "nothing", None)  # JSON null is a value, not an absence
    assert json.loads(await get_shared_state(mine, "nothing")) == {
        "key": "nothing",
        "found": True,
        "value": None,
    }
    stored = await db_pool.fetchval(
        "SELECT value FROM shared_state WHERE task_id = 'task-ss-1' AND key = 'report'"
    )
    assert stored == "replaced"


async def test_oversized_values_and_bad_keys_are_refused(
    make_context: MakeContext, db_pool: asyncpg.Pool
) -> None:
    context = make_context(task_id="task-ss-3", pool=db_pool)
    with pytest.raises(ToolError, match="the limit is"):
        await set_shared_state(context, "big", "x" * MAX_VALUE_BYTES)
    item = default_registry().get("set_shared_state")
    assert item is not None and item.side_effects
    with pytest.raises(ToolArgumentsError, match="key: String should have at least 1 character"):
        item.parse_arguments('{"key": "", "value": 1}')
    with pytest.raises(ToolArgumentsError, match="value: Field required"):
        item.parse_arguments('{"key": "k"}')
