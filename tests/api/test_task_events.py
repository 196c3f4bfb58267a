"""The pushed event log on real Postgres: the NOTIFY trigger and the API's `EventHub`."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
import pytest_asyncio

from mahsm.api import event_hub
from mahsm.api.event_hub import CHANNEL, EventHub, Subscription
from mahsm.api.task_events import LogEvent

NOW = datetime(2025, 1, 1, tzinfo=UTC)
# The statement `activities/store.py` writes events with.
INSERT_EVENT = """
INSERT INTO task_events (task_id, seq, kind, subtask_id, status, data, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (task_id, seq) DO NOTHING
"""


async def new_task(pool: asyncpg.Pool) -> str:
    task_id = f"task-{uuid.uuid4()}"
    await pool.execute(
        "INSERT INTO tasks (id, user_id, description, status, created_at, updated_at)"
        " VALUES ($1, 'alice', 'd', 'running', $2, $2)",
        task_id,
        NOW,
    )
    return task_id


async def write(pool: asyncpg.Pool, task_id: str, *seqs: int) -> None:
    """One transaction writing the events `seqs` (a batch, as the engine writes them)."""
    async with pool.acquire() as connection, connection.transaction():
        await connection.executemany(
            INSERT_EVENT,
            [
                (task_id, seq, "note", None, None, {"message": f"event {seq}", "extra": seq}, NOW)
                for seq in seqs
            ],
        )


async def received(subscription: Subscription, count: int, timeout_s: float = 5) -> list[int]:
    seqs: list[int] = []
    while len(seqs) < count:
        batch = await asyncio.wait_for(subscription.next_events(), timeout_s)
        seqs += [e.seq for e in batch]
    return seqs


async def nothing_more(subscription: Subscription, wait_s: float = 0.5) -> bool:
    await asyncio.sleep(wait_s)
    return subscription.queue.empty()


@pytest_asyncio.fixture
async def hub(database_url: str) -> AsyncIterator[EventHub]:
    hub = EventHub(database_url)
    await hub.start()
    await asyncio.wait_for(hub.listening.wait(), 10)
    yield hub
    await hub.close()


async def test_the_trigger_notifies_the_task_id_once_per_transaction(
    database_url: str, db_pool: asyncpg.Pool
) -> None:
    task_id = await new_task(db_pool)
    got: asyncio.Queue[str] = asyncio.Queue()
    connection = await asyncpg.connect(database_url)
    try:
        await connection.add_listener(CHANNEL, lambda *args: got.put_nowait(args[3]))
        await write(db_pool, task_id, 1, 2, 3)
        assert await asyncio.wait_for(got.get(), 5) == task_id
        await write(db_pool, task_id, 1, 2, 3)  # a retried write: every insert conflicts
        await asyncio.sleep(0.5)
        assert got.empty()  # one notification for the batch, none for the retry
    finally:
        await connection.close()


async def test_subscribers_get_their_rows_in_order_from_one_shared_read(
    hub: EventHub, db_pool: asyncpg.Pool
) -> None:
    task_id, other = await new_task(db_pool), await new_task(db_pool)
    await write(db_pool, task_id, 1, 2, 3)
    async with hub.subscribe(task_id, 0) as first, hub.subscribe(task_id, 2) as resumed:
        assert await received(first, 3) == [1, 2, 3]
        assert await received(resumed, 1) == [3]
        reads = hub.reads
        await write(db_pool, other, 1, 2)  # another task's rows wake nobody here
        await asyncio.sleep(0.5)
        assert hub.reads == reads
        await write(db_pool, task_id, 4, 5)
        assert await received(first, 2) == [4, 5]
        assert await received(resumed, 2) == [4, 5]
        assert hub.reads == reads + 1  # one query for both streams
        await write(db_pool, task_id, 4, 5)  # retried: no new rows, nothing sent
        assert await nothing_more(first) and await nothing_more(resumed)


async def test_a_gap_holds_later_rows_until_the_missing_one_is_written(
    hub: EventHub, db_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(event_hub, "GAP_WAIT_S", 1.0)
    task_id = await new_task(db_pool)
    await write(db_pool, task_id, 1, 2, 4)  # 3 is committed later (writes out of order)
    async with hub.subscribe(task_id, 0) as subscription:
        assert await received(subscription, 2) == [1, 2]
        assert await nothing_more(subscription, 0.3)
        await write(db_pool, task_id, 3)
        assert await received(subscription, 2) == [3, 4]
        # A gap that never fills is skipped after GAP_WAIT_S, so the stream goes on.
        await write(db_pool, task_id, 6)
        assert await received(subscription, 1, timeout_s=5) == [6]


async def test_the_listener_reconnects_and_catches_up_after_losing_its_connection(
    hub: EventHub, db_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(event_hub, "RETRY_S", 0.2)
    task_id = await new_task(db_pool)
    async with hub.subscribe(task_id, 0) as subscription:
        killed = await db_pool.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE query LIKE 'LISTEN %' AND datname = current_database()"
        )
        assert killed == 1
        await write(db_pool, task_id, 1, 2)  # probably while nobody listens
        assert await received(subscription, 2) == [1, 2]
        await asyncio.wait_for(hub.listening.wait(), 10)
        await write(db_pool, task_id, 3)
        assert await received(subscription, 1) == [3]


def test_an_event_carries_its_row_and_the_optional_fields_of_its_data() -> None:
    event = LogEvent(
        task_id="task-x",
        seq=7,
        kind="subtask_status",
        at=NOW,
        subtask_id="fetch",
        status="completed",
        data={"message": None, "agent": "a1"},
    )
    assert json.loads(json.dumps(event.payload())) == {
        "task_id": "task-x",
        "seq": 7,
        "kind": "subtask_status",
        "at": "2025-01-01T00:00:00+00:00",
        "subtask_id": "fetch",
        "status": "completed",
        "message": None,
        "agent": "a1",
    }
    assert not event.ends_task
    ended = LogEvent("task-x", 8, "task_status", NOW, None, "failed", {"message": "boom"})
    assert ended.ends_task


async def test_streams_of_a_task_share_each_event_and_its_one_encoding(
    hub: EventHub, db_pool: asyncpg.Pool
) -> None:
    task_id = await new_task(db_pool)
    async with hub.subscribe(task_id, 0) as first, hub.subscribe(task_id, 0) as second:
        await write(db_pool, task_id, 1)
        [mine] = await asyncio.wait_for(first.next_events(), 5)
        [theirs] = await asyncio.wait_for(second.next_events(), 5)

    assert mine is theirs  # one decoded row for every stream of the task
    assert mine.sse is theirs.sse  # encoded once, on first use, then shared
    lines = mine.sse.decode().split("\r\n")
    assert lines[:2] == ["id: 1", "event: note"]
    assert json.loads(lines[2].removeprefix("data: ")) == mine.payload()
    assert lines[3:] == ["", ""]
