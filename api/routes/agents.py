"""`GET /agents`: capability pools and their live workers, as Temporal's pollers show them."""

from __future__ import annotations

import asyncio
import time
from itertools import combinations

from fastapi import APIRouter, Depends, Request
from temporalio.client import Client
from temporalio.service import RPCError

from mahsm.api.auth import authenticate
from mahsm.api.deps import SettingsDep, TemporalClientDep
from mahsm.api.routes.tasks import error_responses
from mahsm.api.schemas import AgentsView, PoolView, WorkerView
from mahsm.api.task_access import RPC_TIMEOUT, raise_unavailable
from mahsm.contracts.task import Capability
from mahsm.pool_liveness import PoolDirectory
from mahsm.queues import pool_capabilities, pool_queue, tasks_queue

CACHE_S = 2.0
# Describe calls in flight at once (there are 2 x 64 of them per request).
_CONCURRENCY = 16

router = APIRouter(tags=["agents"], dependencies=[Depends(authenticate)])


def all_pool_queues(prefix: str) -> list[str]:
    """Every pool queue a worker could poll: one per non-empty capability set."""
    caps = list(Capability)
    return [
        pool_queue(prefix, combo)
        for size in range(1, len(caps) + 1)
        for combo in combinations(caps, size)
    ]


async def _workers(directory: PoolDirectory, queue: str) -> list[WorkerView]:
    """Workers polling `queue`, by the same rule routing uses (`mahsm.pool_liveness`)."""
    workers = await directory.workers(queue)
    return [WorkerView(identity=w.identity, last_seen=w.last_seen) for w in workers]


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


def _directory(request: Request, client: Client) -> PoolDirectory:
    directory: PoolDirectory | None = getattr(request.app.state, "pool_directory", None)
    if directory is None:
        directory = request.app.state.pool_directory = PoolDirectory(
            client, concurrency=_CONCURRENCY, rpc_timeout=RPC_TIMEOUT
        )
    return directory


async def _describe(directory: PoolDirectory, prefix: str) -> AgentsView:
    queues = [tasks_queue(prefix), *all_pool_queues(prefix)]
    try:
        found = await asyncio.gather(*(_workers(directory, q) for q in queues))
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
            cache.value = await _describe(_directory(request, client), settings.queue_prefix)
            cache.expires = time.monotonic() + CACHE_S
        return cache.value
