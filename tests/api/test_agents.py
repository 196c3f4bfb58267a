"""`GET /agents`: pools and live workers from Temporal's pollers, and unserved capabilities."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from mahsm.contracts.task import Capability
from mahsm.queues import pool_queue, tasks_queue
from tests.api.conftest import StackFactory
from tests.engine_harness import AGGREGATE

SCENARIO = {"rules": [AGGREGATE]}


async def test_agents_lists_live_pools_with_workers_and_unserved_capabilities(
    api_stack: StackFactory,
) -> None:
    async with api_stack(
        SCENARIO,
        capabilities=[Capability.DATA_ANALYSIS],
        extra_pools=[[Capability.API_INTEGRATION, Capability.FILE_PROCESSING]],
    ) as stack:
        prefix = stack.engine.settings.queue_prefix
        body: dict[str, Any] = {}
        for _ in range(100):  # workers start polling a moment after they start
            response = await stack.http.get("/agents")
            if response.status_code == 503:  # transient under load: retry
                await asyncio.sleep(0.1)
                continue
            assert response.status_code == 200, response.text
            body = response.json()
            if len(body["pools"]) == 2 and body["orchestrators"]:
                break
            await asyncio.sleep(0.1)

    assert body["task_queue"] == tasks_queue(prefix)
    assert body["orchestrators"] and body["orchestrators"][0]["identity"]
    pools = {p["task_queue"]: p for p in body["pools"]}
    analysis = pool_queue(prefix, [Capability.DATA_ANALYSIS])
    io = pool_queue(prefix, [Capability.API_INTEGRATION, Capability.FILE_PROCESSING])
    assert set(pools) == {analysis, io}
    assert pools[io]["capabilities"] == ["api_integration", "file_processing"]
    for pool in pools.values():
        worker = pool["workers"][0]
        assert worker["identity"]
        seen = datetime.fromisoformat(worker["last_seen"])
        assert abs(datetime.now(UTC) - seen) < timedelta(minutes=2)
    assert body["unserved_capabilities"] == [
        "web_scraping",
        "code_generation",
        "database_operations",
    ]
