"""One rule says a pool is live, for routing (`resolve_pool`) and for `GET /agents` alike."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from mahsm.activities.engine import EngineActivities
from mahsm.api.routes.agents import _describe
from mahsm.contracts.engine import PoolRequest
from mahsm.contracts.task import Capability
from mahsm.pool_liveness import PoolDirectory, PoolWorker
from mahsm.profiles.registry import PoolRegistry
from mahsm.queues import pool_queue, tasks_queue
from mahsm.settings import load_settings


@activity.defn(name="noop_for_liveness")
async def noop() -> None:
    """An activity, so the worker polls its queue for activity tasks."""


async def test_a_pool_polled_only_for_activities_is_live_for_routing_and_agents(
    temporal_client: Client,
) -> None:
    # Inline agents' work on a pool queue is activities: a worker serving only those serves
    # the pool. Routing once counted workflow pollers only, and /agents counted both.
    prefix = f"t{uuid.uuid4().hex[:10]}"
    queue = pool_queue(prefix, [Capability.WEB_SCRAPING])
    engine = EngineActivities(settings=load_settings(_env_file=None), client=temporal_client)
    async with Worker(temporal_client, task_queue=queue, activities=[noop]):
        chosen = None
        view = None
        for _ in range(50):  # the server lists a new poller within moments
            directory = PoolDirectory(temporal_client, cache_s=0)
            view = await _describe(directory, prefix)
            if view.pools:
                chosen = await engine.resolve_pool(
                    PoolRequest(queue_prefix=prefix, capabilities=[Capability.WEB_SCRAPING])
                )
                break
            await asyncio.sleep(0.1)

    assert view is not None and [p.task_queue for p in view.pools] == [queue]
    assert chosen is not None and chosen.task_queue == queue


class AskedDirectory(PoolDirectory):
    """A directory, uncached, that records which queues it was asked about."""

    def __init__(self, client: Client) -> None:
        super().__init__(client, cache_s=0)
        self.asked: list[str] = []

    async def workers(self, queue: str) -> list[PoolWorker]:
        self.asked.append(queue)
        return await super().workers(queue)


async def test_routing_asks_about_larger_pools_only_when_no_smaller_one_is_live(
    temporal_client: Client,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    exact = pool_queue(prefix, [Capability.WEB_SCRAPING])
    larger = pool_queue(prefix, [Capability.WEB_SCRAPING, Capability.DATA_ANALYSIS])
    engine = EngineActivities(settings=load_settings(_env_file=None), client=temporal_client)
    engine.pools = directory = AskedDirectory(temporal_client)
    asked = directory.asked
    need = PoolRequest(queue_prefix=prefix, capabilities=[Capability.WEB_SCRAPING])
    async with Worker(temporal_client, task_queue=exact, activities=[noop]):
        async with Worker(temporal_client, task_queue=larger, activities=[noop]):
            for _ in range(50):  # until the server lists both pollers
                if await engine.pools.is_live(exact) and await engine.pools.is_live(larger):
                    break
                await asyncio.sleep(0.1)
            asked.clear()
            chosen = await engine.resolve_pool(need)
            assert chosen.task_queue == exact
            # The 31 supersets were not asked about; the task's own queue is, once a pool
            # is chosen (whether the pool's calls may run there).
            assert asked == [exact, tasks_queue(prefix)]
            asked.clear()
            moved = await engine.resolve_pool(need.model_copy(update={"avoid": [exact]}))
            assert moved.task_queue == larger  # a stalled pool sends the search one size up
            assert exact in asked and larger in asked


async def test_a_live_published_pool_is_found_without_asking_about_any_other(
    temporal_client: Client, db_pool: asyncpg.Pool
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    published = pool_queue(prefix, [Capability.WEB_SCRAPING, Capability.DATA_ANALYSIS])
    registry = PoolRegistry(db_pool, cache_s=0)
    await registry.publish(prefix=prefix, task_queue=published, identity="w1", profile=None)
    engine = EngineActivities(
        settings=load_settings(_env_file=None), client=temporal_client, registry=registry
    )
    engine.pools = directory = AskedDirectory(temporal_client)
    asked = directory.asked
    async with Worker(temporal_client, task_queue=published, activities=[noop]):
        for _ in range(50):  # until the server lists the poller
            if await engine.pools.is_live(published):
                break
            await asyncio.sleep(0.1)
        asked.clear()
        chosen = await engine.resolve_pool(
            PoolRequest(queue_prefix=prefix, capabilities=[Capability.WEB_SCRAPING])
        )
    assert chosen.task_queue == published
    # Not the exact pool nor any other built-in superset (the task's own queue: see above).
    assert asked == [published, tasks_queue(prefix)]
