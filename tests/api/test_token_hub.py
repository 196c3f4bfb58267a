"""Token chunks through the API's `EventHub` on real Postgres: routing, opt-in, slow streams.

Chunks published by a worker's `TokenPublisher` reach only the streams of their task that
asked for tokens; a stream that does not read loses chunks past `TOKEN_QUEUE` (counted),
and neither the publisher nor the hub ever waits for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from mahsm.activities.llm.token_stream import CallTextStream, TokenPublisher
from mahsm.api import stream_subscription
from mahsm.api.event_hub import EventHub
from mahsm.api.stream_subscription import LiveTokens, Subscription
from mahsm.contracts.stream import LiveText, TokenChunk


@pytest_asyncio.fixture
async def hub(database_url: str) -> AsyncIterator[EventHub]:
    hub = EventHub(database_url)
    await hub.start()
    await asyncio.wait_for(hub.listening.wait(), 10)
    yield hub
    await hub.close()


def _stream(publisher: TokenPublisher, task_id: str) -> CallTextStream:
    identity = TokenChunk(
        task_id=task_id, workflow_id=task_id, activity_id="1", call=f"{task_id}/1", attempt=1, seq=0
    )
    return CallTextStream(publisher, identity=identity, interval_s=0.0)


async def _tokens(subscription: Subscription, count: int) -> list[TokenChunk]:
    chunks = []
    while len(chunks) < count:
        item = await asyncio.wait_for(subscription.next_item(), 5)
        assert isinstance(item, LiveTokens)
        chunks.append(TokenChunk.model_validate_json(item.body))
    return chunks


async def test_chunks_reach_only_the_streams_of_their_task_that_asked(
    hub: EventHub, db_pool: asyncpg.Pool
) -> None:
    publisher = TokenPublisher(db_pool)
    async with (
        hub.subscribe("task-a", 0, tokens=True) as wants,
        hub.subscribe("task-a", 0) as plain,
        hub.subscribe("task-b", 0, tokens=True) as other,
    ):
        text = _stream(publisher, "task-a")
        for word in ("one ", "two ", "three"):
            text.feed(word)
        text.close(failed=False)
        chunks = await _tokens(wants, 3)
        assert [c.seq for c in chunks] == [0, 1, 2] and chunks[-1].done
        live = LiveText()
        for chunk in chunks:
            live.add(chunk)
        assert live.text("task-a/1") == "one two three"
        await asyncio.sleep(0.3)
        assert plain.queue.empty() and other.queue.empty()


async def test_a_stream_that_does_not_read_drops_chunks_and_slows_nobody(
    hub: EventHub, db_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_subscription, "TOKEN_QUEUE", 20)
    publisher = TokenPublisher(db_pool)
    async with hub.subscribe("task-slow", 0, tokens=True) as stalled:
        text = _stream(publisher, "task-slow")
        for index in range(60):
            text.feed(f"w{index} ")
        text.close(failed=False)
        await publisher.flushed()
        assert publisher.sent == 61 and publisher.dropped == 0  # the worker lost nothing
        for _ in range(100):
            if stalled.queued_tokens + stalled.dropped_tokens == 61:
                break
            await asyncio.sleep(0.05)
        assert (stalled.queued_tokens, stalled.dropped_tokens) == (20, 41)
        first = await _tokens(stalled, 20)  # what it holds is still in order
        assert [c.seq for c in first] == list(range(20))
