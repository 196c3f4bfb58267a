"""Publishing the live text of calls: NOTIFY on real Postgres, redaction, limits, drops.

Chunks are read back by a real `LISTEN` connection. A publisher whose Postgres is down, or
whose buffer is full, drops and counts chunks without ever making the caller wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from mahsm.activities.llm.token_stream import CallTextStream, TokenPublisher
from mahsm.contracts.stream import TOKEN_CHANNEL, LiveText, TokenChunk
from mahsm.devstack.process import free_port

SECRET = "hunter2-streamed-secret"


def _identity(attempt: int = 1, task_id: str = "task-stream-test") -> TokenChunk:
    return TokenChunk(
        task_id=task_id,
        subtask_id="write",
        workflow_id=task_id,
        activity_id="7",
        call=f"{task_id}/7",
        attempt=attempt,
        seq=0,
    )


@asynccontextmanager
async def listening(database_url: str) -> AsyncIterator[list[str]]:
    """Payloads NOTIFYed on the token channel while the block runs."""
    received: list[str] = []
    connection = await asyncpg.connect(database_url)
    await connection.add_listener(TOKEN_CHANNEL, lambda *args: received.append(args[3]))
    try:
        yield received
    finally:
        await connection.close()


async def _until(condition: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not callable(condition) or not condition():
        assert time.monotonic() < deadline, "condition never reached"
        await asyncio.sleep(0.01)


def _chunks(payloads: list[str]) -> list[TokenChunk]:
    chunks = []
    for payload in payloads:
        task_id, _, body = payload.partition("\n")
        chunk = TokenChunk.model_validate_json(body)
        assert chunk.task_id == task_id
        chunks.append(chunk)
    return chunks


async def test_chunks_reach_a_listener_in_order_with_secrets_redacted(
    db_pool: asyncpg.Pool, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAM_TEST_TOKEN", SECRET)
    publisher = TokenPublisher(db_pool)
    deltas = [
        "Here is ",
        "the key sk-abc",
        "def0123456789xyz and the ",
        "password hunter2-str",
        "eamed-secret, done.",
    ]
    async with listening(database_url) as received:
        text = CallTextStream(publisher, identity=_identity(), interval_s=0.0)
        for delta in deltas:
            text.feed(delta)
        text.close(failed=False)
        await publisher.flushed()
        await _until(lambda: received and received[-1].find('"done":true') >= 0)
    chunks = _chunks(received)
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert len(chunks) > 2  # cut as it came, not in one piece at the end
    assert chunks[-1].done and not chunks[-1].failed
    streamed = "".join(c.text for c in chunks)
    assert streamed == "Here is the key [REDACTED] and the password [REDACTED], done."
    for chunk in chunks:  # no piece of a secret in any chunk
        assert "sk-abc" not in chunk.text and "hunter2" not in chunk.text
    assert publisher.sent == len(chunks) and publisher.dropped == 0


async def test_long_text_is_split_under_the_notify_limit(
    db_pool: asyncpg.Pool, database_url: str
) -> None:
    publisher = TokenPublisher(db_pool)
    long_text = "".join(f"wörd{i}\u0001 ✓ " for i in range(3000))  # 6-byte JSON escapes too
    async with listening(database_url) as received:
        text = CallTextStream(publisher, identity=_identity(), interval_s=0.0)
        text.feed(long_text)
        text.close(failed=False)
        await publisher.flushed()
        await _until(lambda: received and received[-1].find('"done":true') >= 0)
    assert publisher.dropped == 0
    assert len(received) > 3
    assert max(len(p.encode()) for p in received) < 8000
    live = LiveText()
    for chunk in _chunks(received):
        live.add(chunk)
    assert live.text(_identity().call) == long_text


class CapturingPublisher(TokenPublisher):
    """Keeps what would be sent, with no Postgres."""

    def __init__(self) -> None:
        super().__init__(pool=None)  # type: ignore[arg-type]
        self.payloads: list[str] = []

    def publish(self, payloads: list[str]) -> None:
        self.payloads.extend(payloads)


async def test_text_without_whitespace_is_held_back_until_safe() -> None:
    publisher = CapturingPublisher()
    sent = publisher.payloads
    text = CallTextStream(publisher, identity=_identity(), interval_s=0.0)
    text.feed("sk-0123456789abcdef")  # a key may go on: nothing is sent yet
    assert sent == []
    text.feed("0123 then more")
    assert "".join(c.text for c in _chunks(sent)) == "[REDACTED] then "
    text.close(failed=True)
    chunks = _chunks(sent)
    assert chunks[-1].done and chunks[-1].failed
    assert "".join(c.text for c in chunks) == "[REDACTED] then more"


async def test_an_attempt_ending_before_its_first_chunk_publishes_nothing() -> None:
    publisher = CapturingPublisher()
    sent = publisher.payloads
    now = [0.0]

    def stream() -> CallTextStream:
        return CallTextStream(
            publisher, identity=_identity(), interval_s=0.075, clock=lambda: now[0]
        )

    quick = stream()
    quick.feed("a whole answer ")
    now[0] = 0.05  # the call ends before a chunk is due
    quick.feed("in one go")
    quick.close(failed=False)
    assert sent == []  # its text arrives with its result, not as live text
    slow = stream()
    slow.feed("first words ")
    now[0] = 0.2
    slow.feed("then more ")
    slow.close(failed=False)
    chunks = _chunks(sent)
    assert chunks[-1].done and "".join(c.text for c in chunks) == "first words then more "


async def test_a_full_buffer_drops_and_counts(db_pool: asyncpg.Pool) -> None:
    publisher = TokenPublisher(db_pool, buffer_chunks=2)
    publisher.publish([f"task-x\n{{}}{i}" for i in range(5)])
    assert publisher.dropped == 3
    await publisher.flushed()
    assert publisher.sent == 2


async def test_postgres_down_drops_chunks_and_never_makes_the_caller_wait() -> None:
    dead = await asyncpg.create_pool(
        f"postgresql://nobody@127.0.0.1:{free_port()}/none", min_size=0, max_size=1
    )
    publisher = TokenPublisher(dead)
    text = CallTextStream(publisher, identity=_identity(), interval_s=0.0)
    started = time.monotonic()
    for index in range(200):
        text.feed(f"word{index} ")
    text.close(failed=False)
    assert time.monotonic() - started < 0.5  # publishing is only appending to a buffer
    await publisher.flushed()
    assert publisher.sent == 0
    assert publisher.dropped > 0
    await dead.close()


def test_live_text_replaces_the_text_of_an_older_attempt() -> None:
    live = LiveText()
    first = _identity(attempt=1)
    second = _identity(attempt=2)
    live.add(first.model_copy(update={"seq": 0, "text": "Partial ans"}))
    live.add(first.model_copy(update={"seq": 1, "text": "wer", "done": True, "failed": True}))
    assert live.text(first.call) == "Partial answer"
    live.add(second.model_copy(update={"seq": 0, "text": "Full "}))
    assert live.add(first.model_copy(update={"seq": 2, "text": " late"})) is None  # stale
    live.add(second.model_copy(update={"seq": 2, "text": "answer.", "done": True}))
    call = live.calls[first.call]
    assert (call.text, call.attempt, call.gaps, call.done) == ("Full answer.", 2, 1, True)
    assert live.running() == []
