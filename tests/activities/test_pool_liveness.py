"""One rule says a pool is live, for routing (`resolve_pool`) and for `GET /agents` alike."""

from __future__ import annotations

import asyncio
import uuid

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from mahsm.activities.engine import EngineActivities
from mahsm.api.routes.agents import _describe
from mahsm.contracts.engine import PoolRequest
from mahsm.contracts.task import Capability
from mahsm.pool_liveness import PoolDirectory
from mahsm.queues import pool_queue
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
