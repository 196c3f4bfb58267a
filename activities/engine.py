"""Engine activities: the worker's defaults, and finding a live pool for a capability set."""

from __future__ import annotations

import asyncio
import time

from temporalio import activity
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from mahsm.contracts.engine import DefaultsRequest, EngineDefaults, PoolChoice, PoolRequest
from mahsm.queues import candidate_pools
from mahsm.settings import Settings

# Poller lists change slowly; a short cache keeps lookups off the hot path of every subtask.
_POLLER_CACHE_S = 2.0


class EngineActivities:
    """Activities that read the worker's configuration and Temporal's view of the pools."""

    def __init__(self, *, settings: Settings, client: Client) -> None:
        self.settings = settings
        self.client = client
        self._pollers: dict[str, tuple[float, list[str]]] = {}
        self._inflight: dict[str, asyncio.Future[list[str]]] = {}

    @activity.defn(name="engine_defaults")
    async def engine_defaults(self, _: DefaultsRequest) -> EngineDefaults:
        """The defaults a task takes for every option it leaves unset."""
        s = self.settings
        return EngineDefaults(
            model=s.default_model,
            task_timeout_s=s.task_timeout_s,
            subtask_timeout_s=s.subtask_timeout_s,
            llm_timeout_s=s.llm_timeout_s,
            tool_timeout_s=s.tool_timeout_s,
            capability_wait_s=s.capability_wait_s,
            claim_check_bytes=s.claim_check_bytes,
        )

    async def workers_polling(self, queue: str) -> list[str]:
        """Identities of the workers recently polling `queue` for workflow tasks.

        Concurrent lookups of one queue share a single request to the server.
        """
        cached = self._pollers.get(queue)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        pending = self._inflight.get(queue)
        if pending is None:
            pending = asyncio.ensure_future(self._describe(queue))
            self._inflight[queue] = pending
            pending.add_done_callback(lambda _: self._inflight.pop(queue, None))
        return await asyncio.shield(pending)

    async def _describe(self, queue: str) -> list[str]:
        response = await self.client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=self.client.namespace,
                task_queue=TaskQueue(name=queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        identities = [poller.identity for poller in response.pollers]
        self._pollers[queue] = (time.monotonic() + _POLLER_CACHE_S, identities)
        return identities

    @activity.defn(name="resolve_pool")
    async def resolve_pool(self, request: PoolRequest) -> PoolChoice:
        """The smallest live pool whose capabilities include all of `request.capabilities`.

        Raises a retryable error while no worker serves them: the workflow's retry policy
        bounds how long a subtask waits for one.
        """
        queues = candidate_pools(request.queue_prefix, request.capabilities)
        found = await asyncio.gather(*(self.workers_polling(q) for q in queues))
        for queue, workers in zip(queues, found, strict=True):
            if workers:
                return PoolChoice(task_queue=queue, workers=sorted(workers))
        needed = ",".join(sorted(c.value for c in request.capabilities))
        raise ApplicationError(
            f"no worker serves capabilities [{needed}]; start one with"
            f" MAHSM_WORKER_CAPABILITIES={needed} mahsm worker",
            type="NoWorkerForCapabilities",
        )
