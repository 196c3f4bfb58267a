"""One event stream's place in a task's log, and the live token chunks queued for it.

`EventHub` (`api/event_hub.py`) feeds subscriptions; `GET /tasks/{id}/events` reads one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import cached_property

from sse_starlette import ServerSentEvent

from mahsm.api.task_events import LogEvent
from mahsm.contracts.stream import TOKENS_EVENT

# Token chunks a stream may have waiting; past that a slow client's chunks are dropped.
TOKEN_QUEUE = 500


class LogUnavailable(Exception):
    """The event log could not be read for `GIVE_UP_S`."""


@dataclass(frozen=True)
class LiveTokens:
    """One token chunk of a running LLM call: its JSON as the worker published it."""

    body: str

    @cached_property
    def sse(self) -> bytes:
        """The chunk as an `llm_tokens` SSE event, encoded once for all the task's streams."""
        return ServerSentEvent(data=self.body, event=TOKENS_EVENT).encode()


@dataclass(eq=False)
class Subscription:
    """One stream's place in a task's log: rows past `delivered` arrive on `queue`.

    With `tokens`, the task's live token chunks arrive on the same queue, in between.
    """

    delivered: int
    tokens: bool = False
    queue: asyncio.Queue[list[LogEvent] | LiveTokens | LogUnavailable] = field(
        default_factory=asyncio.Queue
    )
    queued_tokens: int = 0
    dropped_tokens: int = 0

    def offer_tokens(self, tokens: LiveTokens) -> None:
        """Queue a token chunk, unless this stream wants none or has too many waiting."""
        if not self.tokens:
            return
        if self.queued_tokens >= TOKEN_QUEUE:
            self.dropped_tokens += 1
            return
        self.queued_tokens += 1
        self.queue.put_nowait(tokens)

    async def next_item(self) -> list[LogEvent] | LiveTokens:
        """The next events in order, or a token chunk (waits for one).

        Raises:
            LogUnavailable: Postgres did not answer for `GIVE_UP_S`.
        """
        item = await self.queue.get()
        if isinstance(item, LogUnavailable):
            raise item
        if isinstance(item, LiveTokens):
            self.queued_tokens -= 1
        return item

    async def next_events(self) -> list[LogEvent]:
        """The next events in order (waits for them); token chunks are skipped.

        Raises:
            LogUnavailable: Postgres did not answer for `GIVE_UP_S`.
        """
        while True:
            item = await self.next_item()
            if isinstance(item, list):
                return item
