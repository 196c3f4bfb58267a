"""Publishing the text of running LLM calls: fire-and-forget, bounded, never on the call's path.

`TokenPublisher` (one per worker) sends `TokenChunk`s with Postgres `NOTIFY` on
`TOKEN_CHANNEL`; the API's event hub listens (see `docs/decisions.md`, "Live token streams").
`CallTextStream` (one per call attempt) is what a provider feeds with text deltas: it
coalesces them into chunks every `interval_s`, redacts secrets, and hands the chunks to the
publisher, which never blocks: when its buffer is full, or Postgres is down, chunks are
dropped and counted (`mahsm_llm_token_chunks{outcome="dropped"}`). The call's durable result
does not depend on any of this.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Callable

import asyncpg
import structlog

from mahsm import metrics
from mahsm.contracts.stream import TOKEN_CHANNEL, TokenChunk
from mahsm.redaction import redact_output

log = structlog.get_logger(__name__)

NOTIFY_MAX_BYTES = 7900
"""A NOTIFY payload must stay under Postgres' 8000 bytes; longer text is split."""
BUFFER_CHUNKS = 2000
"""Chunks a worker holds while Postgres is slow; past that new ones are dropped."""
BATCH_CHUNKS = 100
SEND_TIMEOUT_S = 2.0
DOWN_BACKOFF_S = 2.0
"""After a failed send, chunks are dropped without trying for this long."""
HOLD_NO_SPACE_CHARS = 256
"""Text without whitespace is held back this far (a secret is never split across chunks)."""

_SEND = f"SELECT pg_notify('{TOKEN_CHANNEL}', payload) FROM unnest($1::text[]) AS t(payload)"
_LAST_SPACE = re.compile(r"\s(?=\S*\Z)")
_SEND_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class TokenPublisher:
    """Sends token chunks of this worker's calls with NOTIFY through `pool`.

    `publish` only appends to a bounded buffer; one background task drains it, in order,
    and ends when the buffer is empty (no task outlives the work).

    Args:
        pool: The worker's Postgres pool (a connection is held only for one batch).
        buffer_chunks: Chunks buffered at most.
    """

    def __init__(self, pool: asyncpg.Pool, *, buffer_chunks: int = BUFFER_CHUNKS) -> None:
        self._pool = pool
        self._buffer: deque[str] = deque()
        self._limit = buffer_chunks
        self._drainer: asyncio.Task[None] | None = None
        self._down_until = 0.0
        self.sent = 0
        self.dropped = 0

    def publish(self, payloads: list[str]) -> None:
        """Queue NOTIFY payloads; never waits. Dropped (and counted) when the buffer is full."""
        room = self._limit - len(self._buffer)
        if room < len(payloads):
            self._drop(len(payloads) - max(room, 0))
            payloads = payloads[: max(room, 0)]
        self._buffer.extend(payloads)
        if self._buffer and (self._drainer is None or self._drainer.done()):
            self._drainer = asyncio.get_running_loop().create_task(self._drain())

    async def flushed(self) -> None:
        """Wait until the buffer is empty (tests; never awaited by a call)."""
        while self._drainer is not None and not self._drainer.done():
            await asyncio.shield(self._drainer)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._buffer:
            if loop.time() < self._down_until:
                self._drop(len(self._buffer))
                self._buffer.clear()
                return
            batch = [self._buffer.popleft() for _ in range(min(BATCH_CHUNKS, len(self._buffer)))]
            try:
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    async with self._pool.acquire() as connection:
                        await connection.execute(_SEND, batch)
            except _SEND_ERRORS as error:
                self._drop(len(batch))
                self._down_until = loop.time() + DOWN_BACKOFF_S
                log.warning("token chunks dropped", error_type=type(error).__name__)
                continue
            self.sent += len(batch)
            metrics.LLM_TOKEN_CHUNKS.labels("sent").inc(len(batch))

    def _drop(self, count: int) -> None:
        self.dropped += count
        metrics.LLM_TOKEN_CHUNKS.labels("dropped").inc(count)


class CallTextStream:
    """The live text of one attempt of one call; `feed` is the provider's `on_text`.

    Text is cut only at whitespace (or, without any, `HOLD_NO_SPACE_CHARS` before its end),
    so a secret (which holds no whitespace) is redacted whole, never split between chunks.

    Args:
        publisher: Where chunks go.
        identity: The chunk fields naming the call (task, subtask, workflow, activity,
            attempt).
        interval_s: Chunks are cut at most this often.
        clock: Monotonic seconds (tests may pass their own).
    """

    def __init__(
        self,
        publisher: TokenPublisher,
        *,
        identity: TokenChunk,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._publisher = publisher
        self._identity = identity
        self._interval = interval_s
        self._clock = clock
        self._pending = ""
        self._seq = 0
        self._last = clock()
        self._closed = False
        self._room = _room(identity)

    def feed(self, text: str) -> None:
        """Add a text delta; publishes a chunk when `interval_s` has passed since the last."""
        if self._closed or not text:
            return
        self._pending += text
        if self._clock() - self._last >= self._interval:
            self._flush(done=False, failed=False)

    def close(self, *, failed: bool) -> None:
        """End the attempt: publish the rest and the `done` marker (idempotent).

        An attempt that ends before its first chunk was due publishes nothing: no one saw
        any of its text live, and its result arrives with the task's events. Most calls of
        a fast model end so, and skip a NOTIFY each.
        """
        if not self._closed:
            if self._seq > 0:
                self._flush(done=True, failed=failed)
            self._closed = True

    def _flush(self, *, done: bool, failed: bool) -> None:
        cut = len(self._pending) if done else _safe_cut(self._pending)
        if cut == 0 and not done:
            return
        text, self._pending = self._pending[:cut], self._pending[cut:]
        self._last = self._clock()
        payloads = []
        pieces = _split(redact_output(text), self._room) if text else [""]
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            chunk = self._identity.model_copy(
                update={"seq": self._seq, "text": piece, "done": done and last, "failed": failed}
            )
            self._seq += 1
            payloads.append(f"{chunk.task_id}\n{chunk.model_dump_json()}")
        self._publisher.publish(payloads)


def _room(identity: TokenChunk) -> int:
    """Characters of text per chunk: a char takes at most 6 bytes in JSON (an escape)."""
    widest = identity.model_copy(update={"seq": 2**40, "done": True, "failed": True})
    overhead = len(widest.task_id.encode()) + 1 + len(widest.model_dump_json().encode())
    return max((NOTIFY_MAX_BYTES - overhead) // 6, 1)


def _safe_cut(text: str) -> int:
    """Where `text` may be cut now: after its last whitespace, else well before its end."""
    space = _LAST_SPACE.search(text)
    return space.end() if space else max(len(text) - HOLD_NO_SPACE_CHARS, 0)


def _split(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]
