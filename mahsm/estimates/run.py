"""Running `PlanEstimateWorkflow`: the one way the API and the client ask for an estimate."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from temporalio.client import Client

from mahsm.contracts.estimate import EstimateReport, EstimateWorkflowInput
from mahsm.contracts.task import TaskRequest
from mahsm.pool_liveness import PoolDirectory
from mahsm.queues import tasks_queue

POLLER_GRACE_CHECKS = 6
POLLER_GRACE_INTERVAL_S = 0.5
ESTIMATE_WORKFLOW = "PlanEstimateWorkflow"
"""Name of the workflow (on `<prefix>-tasks`) that plans once and estimates."""


class NoTaskWorker(Exception):
    """No worker polls the task queue: an estimate would wait for one until it timed out."""


async def request_estimate(
    client: Client, request: TaskRequest, *, queue_prefix: str, timeout_s: float
) -> EstimateReport:
    """Plan (when `request` has no plan) and estimate, waiting at most `timeout_s`.

    Raises:
        NoTaskWorker: No worker polls `<prefix>-tasks` (asked before starting anything).
        temporalio.client.WorkflowFailureError: planning or estimating failed, or timed out
            (its cause says which).
        temporalio.service.RPCError: Temporal is unreachable.
    """
    queue = tasks_queue(queue_prefix)
    if not await _polled_soon(client, queue):
        raise NoTaskWorker(
            f"no worker polls the task queue {queue}; start one (`mahsm worker` or `mahsm up`)"
            " with MAHSM_QUEUE_PREFIX=" + queue_prefix
        )
    report: EstimateReport = await client.execute_workflow(
        ESTIMATE_WORKFLOW,
        EstimateWorkflowInput(request=request),
        id=f"estimate-{uuid.uuid4()}",
        task_queue=queue,
        result_type=EstimateReport,
        execution_timeout=timedelta(seconds=timeout_s),
        static_summary=f"estimate: {request.description[:180]}",
    )
    return report


async def _polled_soon(client: Client, queue: str) -> bool:
    """Whether a worker polls `queue`, allowing a just-started worker a few seconds to show.

    Temporal lists a worker as a poller only once its first poll reached the server.
    """
    directory = PoolDirectory(client, cache_s=0)
    for _ in range(POLLER_GRACE_CHECKS):
        if await directory.is_live(queue):
            return True
        await asyncio.sleep(POLLER_GRACE_INTERVAL_S)
    return await directory.is_live(queue)
