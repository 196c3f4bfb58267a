"""Pushes new rows of the task event log to the API's event streams.

A trigger on `task_events` (migration 0003) notifies the channel `mahsm_task_events` with the
task id of every inserted row. The hub holds ONE listening connection per API process and a
small pool of its own for reading the log, so streams never take a connection from the pool
that serves `GET /tasks`, and never ask Temporal anything. Per task being followed, one
reader fetches the rows past the lowest position of its subscribers once per notification and
hands every subscriber the rows past its own position: N streams on one task cost one query
per notification, not N.

Rows are delivered in `seq` order without gaps. A gap (an event whose predecessor is not
committed yet, e.g. two writes committing out of order) holds the later rows back until the
missing one appears, for at most `GAP_WAIT_S`; after that the rows are delivered anyway.

The same connection listens to `TOKEN_CHANNEL`: workers publish the text of running LLM calls
there (`mahsm.contracts.stream`). A chunk is routed by the task id that starts its payload,
without parsing, to the subscriptions of that task that asked for tokens; each holds at most
`TOKEN_QUEUE` unsent chunks (`api/stream_subscription.py`), so a slow client loses chunks
(counted), never memory or time.
Chunks are never stored nor replayed: a stream sees those published while it is open.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import structlog

from mahsm.api.deps import CONNECT_TIMEOUT_S, BackendUnavailable
from mahsm.api.read_model import DATABASE_ERRORS
from mahsm.api.stream_subscription import LiveTokens, LogUnavailable, Subscription
from mahsm.api.task_events import READ_BATCH, contiguous, read_log
from mahsm.contracts.stream import TOKEN_CHANNEL
from mahsm.db.pool import create_pool
from mahsm.logging import redact_text

log = structlog.get_logger(__name__)

CHANNEL = "mahsm_task_events"
# Connections of the hub's read pool: reads are small and indexed; two keep up with
# hundreds of streams because readers are shared per task.
READ_POOL_SIZE = 2
RETRY_S = 1.0
# A listening connection is checked this often; a dead one is replaced and every followed
# task re-read (notifications sent while it was down are lost).
LISTEN_CHECK_S = 15.0
GAP_WAIT_S = 2.0
# How long a reader retries while Postgres cannot answer before its streams get `error`.
GIVE_UP_S = 60.0


class _Topic:
    """The subscribers of one task and the reader that feeds them."""

    def __init__(self, hub: EventHub, task_id: str) -> None:
        self.hub = hub
        self.task_id = task_id
        self.subscribers: set[Subscription] = set()
        self.wake = asyncio.Event()
        self.gap_since: float | None = None
        self.reader = hub.spawn(self._read_forever())

    async def _read_forever(self) -> None:
        loop = asyncio.get_running_loop()
        failing_since: float | None = None
        while True:
            await self.wake.wait()
            self.wake.clear()
            if not self.subscribers:
                continue
            try:
                more = await self._read_once(loop.time())
                failing_since = None
            except DATABASE_ERRORS as error:
                now = loop.time()
                failing_since = failing_since if failing_since is not None else now
                log.warning(
                    "event log unreadable", task_id=self.task_id, error=redact_text(str(error))
                )
                if now - failing_since > GIVE_UP_S:
                    for subscriber in self.subscribers:
                        subscriber.queue.put_nowait(LogUnavailable(redact_text(str(error))))
                    self.hub.forget(self)  # a later stream of this task starts afresh
                    return
                loop.call_later(RETRY_S, self.wake.set)
                continue
            if more:
                self.wake.set()

    async def _read_once(self, now: float) -> bool:
        """Read and hand out new rows; True when more may be waiting right away."""
        after = min(s.delivered for s in self.subscribers)
        self.hub.reads += 1
        events = await read_log(self.hub.read_pool, self.task_id, after)
        ready = contiguous(events, after)
        if ready < len(events):  # a gap: wait for the missing row, but not forever
            self.gap_since = self.gap_since if self.gap_since is not None else now
            if now - self.gap_since < GAP_WAIT_S:
                asyncio.get_running_loop().call_later(GAP_WAIT_S / 10, self.wake.set)
                events = events[:ready]
            else:
                log.warning("event log gap skipped", task_id=self.task_id, after=after + ready)
                self.gap_since = None
        else:
            self.gap_since = None
        for subscriber in self.subscribers:
            new = [e for e in events if e.seq > subscriber.delivered]
            if new:
                subscriber.delivered = new[-1].seq
                subscriber.queue.put_nowait(new)
        return len(events) == READ_BATCH


class EventHub:
    """One LISTEN connection and a read pool, shared by every event stream of the process.

    Args:
        database_url: The MAHSM database (None: streams answer 503 `database_unavailable`).
    """

    def __init__(self, database_url: str | None) -> None:
        self.database_url = database_url
        self.reads = 0  # log queries made, for tests and benchmarks
        self.token_chunks = 0  # token chunks received for a followed task
        self.listening = asyncio.Event()
        self._pool: asyncpg.Pool | None = None
        self._topics: dict[str, _Topic] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()
        self._streams: Counter[str | None] = Counter()

    @property
    def read_pool(self) -> asyncpg.Pool:
        """The hub's own pool (after `start`)."""
        if self._pool is None:
            raise RuntimeError("EventHub.start() was not awaited")
        return self._pool

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a background task the hub keeps a reference to until it ends."""
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def start(self) -> asyncpg.Pool:
        """Open the read pool and start listening, once; returns the read pool.

        Raises:
            BackendUnavailable: Postgres cannot be reached or is not configured.
        """
        if self._pool is not None:
            return self._pool
        async with self._start_lock:
            if self._pool is None:
                if self.database_url is None:
                    raise BackendUnavailable("database", "MAHSM_DATABASE_URL is not set")
                try:
                    self._pool = await asyncio.wait_for(
                        create_pool(
                            self.database_url, max_size=READ_POOL_SIZE, session_reset=False
                        ),
                        timeout=CONNECT_TIMEOUT_S,
                    )
                except DATABASE_ERRORS as error:
                    reason = redact_text(str(error)) or type(error).__name__
                    raise BackendUnavailable("database", reason) from error
                self._listener = self.spawn(self._listen_forever(self.database_url))
            return self._pool

    def try_open_stream(self, user: str | None, limit: int) -> StreamSlot | None:
        """Count one more open stream of `user`; None when `limit` are open already."""
        if self._streams[user] >= limit:
            return None
        self._streams[user] += 1
        return StreamSlot(self, user)

    def open_streams(self, user: str | None) -> int:
        """How many streams `user` holds open."""
        return self._streams[user]

    def _close_stream(self, user: str | None) -> None:
        self._streams[user] -= 1
        if self._streams[user] <= 0:
            del self._streams[user]

    @asynccontextmanager
    async def subscribe(
        self, task_id: str, after: int, *, tokens: bool = False
    ) -> AsyncIterator[Subscription]:
        """Follow a task's log from `seq > after` (and its live tokens); the backlog first."""
        topic = self._topics.get(task_id)
        if topic is None:
            topic = self._topics[task_id] = _Topic(self, task_id)
        subscription = Subscription(delivered=after, tokens=tokens)
        topic.subscribers.add(subscription)
        topic.wake.set()
        try:
            yield subscription
        finally:
            topic.subscribers.discard(subscription)
            if not topic.subscribers and self._topics.get(task_id) is topic:
                del self._topics[task_id]
                topic.reader.cancel()

    def forget(self, topic: _Topic) -> None:
        """Stop routing notifications to `topic` (its reader has given up)."""
        if self._topics.get(topic.task_id) is topic:
            del self._topics[topic.task_id]

    def _notified(
        self,
        _connection: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
        _pid: int,
        _channel: str,
        task_id: object,
    ) -> None:
        topic = self._topics.get(str(task_id))
        if topic is not None:
            topic.wake.set()

    def _tokens_notified(
        self,
        _connection: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
        _pid: int,
        _channel: str,
        payload: object,
    ) -> None:
        task_id, _, body = str(payload).partition("\n")
        topic = self._topics.get(task_id)
        if topic is None or not body:
            return
        self.token_chunks += 1
        chunk = LiveTokens(body)
        for subscriber in topic.subscribers:
            subscriber.offer_tokens(chunk)

    def _wake_all(self) -> None:
        for topic in self._topics.values():
            topic.wake.set()

    async def _listen_forever(self, database_url: str) -> None:
        while True:
            try:
                await self._listen(database_url)
            except DATABASE_ERRORS as error:
                log.warning("event listener lost", error=redact_text(str(error)))
            except Exception as error:  # the listener must outlive any failure
                log.error(
                    "event listener failed",
                    error_type=type(error).__name__,
                    error=redact_text(str(error)),
                )
            self.listening.clear()
            self._wake_all()
            await asyncio.sleep(RETRY_S)

    async def _listen(self, database_url: str) -> None:
        connection = await asyncpg.connect(database_url, timeout=CONNECT_TIMEOUT_S)
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        try:
            await connection.add_listener(CHANNEL, self._notified)
            await connection.add_listener(TOKEN_CHANNEL, self._tokens_notified)
            self.listening.set()
            self._wake_all()  # rows inserted before we listened have sent no notification
            while not connection.is_closed():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), timeout=LISTEN_CHECK_S)
                if lost.is_set():
                    return
                await connection.execute("SELECT 1", timeout=CONNECT_TIMEOUT_S)
        finally:
            if not connection.is_closed():
                connection.terminate()

    async def close(self) -> None:
        """Stop listening and reading; close the connections."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._topics.clear()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


class StreamSlot:
    """One open stream counted against its user's limit; `release` is idempotent."""

    def __init__(self, hub: EventHub, user: str | None) -> None:
        self._hub = hub
        self._user = user
        self._released = False

    def release(self) -> None:
        """Give the slot back (when the stream ends or its client goes away)."""
        if not self._released:
            self._released = True
            self._hub._close_stream(self._user)
