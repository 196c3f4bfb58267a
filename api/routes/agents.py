"""`GET /agents`: capability pools and their live workers, as Temporal's pollers show them."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from itertools import combinations

from fastapi import APIRouter, Depends, Request
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

from api.auth import authenticate
from api.deps import SettingsDep, TemporalClientDep
from api.routes.tasks import error_responses
from api.schemas import AgentsView, PoolView, WorkerView
from api.task_access import RPC_TIMEOUT, raise_unavailable
from mahsm.contracts.task import Capability
from mahsm.queues import pool_capabilities, pool_queue, tasks_queue

CACHE_S = 2.0
# Describe calls in flight at once (there are 2 x 64 of them per request).
_CONCURRENCY = 16
_TYPES = (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)

router = APIRouter(tags=["agents"], dependencies=[Depends(authenticate)])


def all_pool_queues(prefix: str) -> list[str]:
    """Every pool queue a worker could poll: one per non-empty capability set."""
    caps = list(Capability)
    return [
        pool_queue(prefix, combo)
        for size in range(1, len(caps) + 1)
        for combo in combinations(caps, size)
    ]


async def _workers(client: Client, queue: str, limit: asyncio.Semaphore) -> list[WorkerView]:
    """Workers polling `queue` for workflow or activity tasks, by identity."""
    seen: dict[str, datetime | None] = {}
    for queue_type in _TYPES:
        async with limit:
            response = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=client.namespace,
                    task_queue=TaskQueue(name=queue),
                    task_queue_type=queue_type,
                ),
                timeout=RPC_TIMEOUT,
            )
        for poller in response.pollers:
            if poller.HasField("last_access_time"):
                last = poller.last_access_time.ToDatetime(tzinfo=UTC)
                previous = seen.get(poller.identity)
                seen[poller.identity] = last if previous is None else max(previous, last)
            else:
                seen.setdefault(poller.identity, None)
    workers = [WorkerView(identity=identity, last_seen=at) for identity, at in seen.items()]
    return sorted(workers, key=lambda w: (w.last_seen is None, w.identity))


class _AgentsCache:
    """The last answer for a short while, so that frequent callers cost Temporal nothing."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.value: AgentsView | None = None
        self.expires = 0.0


def _cache(request: Request) -> _AgentsCache:
    cache: _AgentsCache | None = getattr(request.app.state, "agents_cache", None)
    if cache is None:
        cache = request.app.state.agents_cache = _AgentsCache()
    return cache


async def _describe(client: Client, prefix: str) -> AgentsView:
    queues = [tasks_queue(prefix), *all_pool_queues(prefix)]
    limit = asyncio.Semaphore(_CONCURRENCY)
    try:
        found = await asyncio.gather(*(_workers(client, q, limit) for q in queues))
    except RPCError as error:
        raise_unavailable(error)
    pools = [
        PoolView(
            task_queue=queue,
            capabilities=sorted(pool_capabilities(queue)),
            workers=workers,
        )
        for queue, workers in zip(queues[1:], found[1:], strict=True)
        if workers
    ]
    served = {cap for pool in pools for cap in pool.capabilities}
    return AgentsView(
        task_queue=queues[0],
        orchestrators=found[0],
        pools=pools,
        unserved_capabilities=[c for c in Capability if c not in served],
    )


@router.get("/agents", response_model=AgentsView, responses=error_responses(401, 503))
async def agents(request: Request, client: TemporalClientDep, settings: SettingsDep) -> AgentsView:
    """Live workers of every capability pool, and the capabilities no live pool serves.

    Answers are cached for `CACHE_S` seconds: each one costs Temporal 128 describe calls.
    """
    cache = _cache(request)
    async with cache.lock:
        now = time.monotonic()
        if cache.value is None or cache.expires <= now:
            cache.value = await _describe(client, settings.queue_prefix)
            cache.expires = time.monotonic() + CACHE_S
        return cache.value
