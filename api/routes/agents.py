"""`GET /agents`: capability pools, their live workers and agent profiles.

The pools are those workers published (`agent_pools`) and every built-in capability set;
Temporal's pollers say which are live (`mahsm.pool_liveness`, the rule routing uses).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from itertools import combinations

from fastapi import APIRouter, Depends, Request
from temporalio.service import RPCError

from mahsm.api.auth import authenticate
from mahsm.api.deps import DbPoolDep, SettingsDep, TemporalClientDep
from mahsm.api.pool_views import pool_directory, pool_registry
from mahsm.api.routes.tasks import error_responses
from mahsm.api.schemas import AgentsView, PoolView, ProfileView, WorkerView
from mahsm.api.task_access import raise_unavailable
from mahsm.contracts.profile import PoolProfile
from mahsm.contracts.task import Capability
from mahsm.pool_liveness import PoolDirectory
from mahsm.profiles.registry import RegisteredPool, capability_catalogue
from mahsm.queues import pool_capabilities, pool_queue, tasks_queue

CACHE_S = 2.0

router = APIRouter(tags=["agents"], dependencies=[Depends(authenticate)])


def all_pool_queues(prefix: str) -> list[str]:
    """The pool queue of every non-empty set of built-in capabilities."""
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


async def _describe(
    directory: PoolDirectory, prefix: str, published: Sequence[RegisteredPool] = ()
) -> AgentsView:
    profiles = {p.task_queue: p.profile for p in published}
    builtin = all_pool_queues(prefix)
    queues = [tasks_queue(prefix), *builtin, *sorted(set(profiles) - set(builtin))]
    try:
        found = await asyncio.gather(*(_workers(directory, q) for q in queues))
    except RPCError as error:
        raise_unavailable(error)
    pools = [
        PoolView(
            task_queue=queue,
            capabilities=sorted(pool_capabilities(queue)),
            workers=workers,
            profile=_profile_view(profiles.get(queue)),
        )
        for queue, workers in zip(queues[1:], found[1:], strict=True)
        if workers
    ]
    served = {cap for pool in pools for cap in pool.capabilities}
    live = [p for p in published if any(v.task_queue == p.task_queue for v in pools)]
    return AgentsView(
        task_queue=queues[0],
        orchestrators=found[0],
        pools=pools,
        unserved_capabilities=[c for c in Capability if c not in served],
        capabilities=capability_catalogue(live),
    )


def _profile_view(profile: PoolProfile | None) -> ProfileView | None:
    if profile is None:
        return None
    return ProfileView(
        name=profile.name,
        capabilities=profile.capabilities,
        description=profile.description,
        tools=profile.tools or [],
        model=profile.model,
        max_iterations=profile.max_iterations,
        artifact=profile.artifact,
    )


@router.get("/agents", response_model=AgentsView, responses=error_responses(401, 503))
async def agents(
    request: Request, client: TemporalClientDep, settings: SettingsDep, pool: DbPoolDep
) -> AgentsView:
    """Live workers and agent profile of every pool, and the built-ins no live pool serves.

    Answers are cached for `CACHE_S` seconds: each one costs Temporal 2 describe calls per
    pool (126 for the built-in capability sets, plus the published ones).
    """
    cache = _cache(request)
    async with cache.lock:
        now = time.monotonic()
        if cache.value is None or cache.expires <= now:
            published = await pool_registry(request.app, pool).pools(settings.queue_prefix)
            cache.value = await _describe(
                pool_directory(request.app, client), settings.queue_prefix, published
            )
            cache.expires = time.monotonic() + CACHE_S
        return cache.value
