"""The one rule that says a capability pool is live, used by routing and by `GET /agents`.

A pool is live when some worker polls its task queue, for workflow or for activity tasks, as
Temporal's `DescribeTaskQueue` reports. Answers are cached briefly (poller lists change
slowly) and concurrent questions about one queue share a single pair of calls.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

CACHE_S = 2.0
_TYPES = (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)


@dataclass(frozen=True)
class PoolWorker:
    """A worker polling a queue: its identity and when the server last saw it poll."""

    identity: str
    last_seen: datetime | None


class PoolDirectory:
    """Who polls which queue; the answer of `workers` decides whether a pool is live."""

    def __init__(
        self,
        client: Client,
        *,
        cache_s: float = CACHE_S,
        concurrency: int = 16,
        rpc_timeout: timedelta | None = None,
    ) -> None:
        self._client = client
        self._cache_s = cache_s
        self._limit = asyncio.Semaphore(concurrency)
        self._rpc_timeout = rpc_timeout
        self._cached: dict[str, tuple[float, list[PoolWorker]]] = {}
        self._inflight: dict[str, asyncio.Future[list[PoolWorker]]] = {}

    async def workers(self, queue: str) -> list[PoolWorker]:
        """The workers polling `queue`, most recently seen first; empty when the pool is dead."""
        cached = self._cached.get(queue)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        pending = self._inflight.get(queue)
        if pending is None:
            pending = asyncio.ensure_future(self._describe(queue))
            self._inflight[queue] = pending
            pending.add_done_callback(lambda _: self._inflight.pop(queue, None))
        return await asyncio.shield(pending)

    async def is_live(self, queue: str) -> bool:
        """True when some worker polls `queue`."""
        return bool(await self.workers(queue))

    async def _describe(self, queue: str) -> list[PoolWorker]:
        seen: dict[str, datetime | None] = {}
        for queue_type in _TYPES:
            async with self._limit:
                response = await self._client.workflow_service.describe_task_queue(
                    DescribeTaskQueueRequest(
                        namespace=self._client.namespace,
                        task_queue=TaskQueue(name=queue),
                        task_queue_type=queue_type,
                    ),
                    timeout=self._rpc_timeout,
                )
            for poller in response.pollers:
                last = (
                    poller.last_access_time.ToDatetime(tzinfo=UTC)
                    if poller.HasField("last_access_time")
                    else None
                )
                previous = seen.get(poller.identity)
                seen[poller.identity] = (
                    max(previous, last) if previous and last else (previous or last)
                )
        workers = sorted(
            (PoolWorker(identity=i, last_seen=at) for i, at in seen.items()),
            key=lambda w: (w.last_seen is None, -(w.last_seen.timestamp() if w.last_seen else 0)),
        )
        self._cached[queue] = (time.monotonic() + self._cache_s, workers)
        return workers
