"""Engine activities: the worker's defaults, and finding a live pool for a capability set.

Pools are found among the queues workers published (`mahsm.profiles.registry`) and the
built-in capability sets; a pool counts while some worker polls it (`mahsm.pool_liveness`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from itertools import groupby

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from mahsm.activities.llm.middleware.registry import MiddlewareRegistry
from mahsm.contracts.common import Capability
from mahsm.contracts.engine import DefaultsRequest, EngineDefaults, PoolChoice, PoolRequest
from mahsm.contracts.profile import CapabilityInfo
from mahsm.pool_liveness import PoolDirectory, PoolWorker
from mahsm.profiles.registry import DATABASE_ERRORS, PoolRegistry, capability_catalogue
from mahsm.queues import candidate_pools, pool_capabilities, tasks_queue
from mahsm.settings import Settings

CATALOGUE_TIMEOUT_S = 3.0
"""How long a task's start waits for the live capabilities (engine_defaults' budget is 10 s)."""


class EngineActivities:
    """Activities that read the worker's configuration and Temporal's view of the pools."""

    def __init__(
        self,
        *,
        settings: Settings,
        client: Client,
        middleware: MiddlewareRegistry | None = None,
        registry: PoolRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.pools = PoolDirectory(client)
        self.registry = registry  # None: only the built-in capability sets are found
        self.middleware = (
            middleware if middleware is not None else MiddlewareRegistry.from_settings(settings)
        )

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
            inline_history_events=s.inline_history_events,
            inline_history_bytes=s.inline_history_bytes,
            llm_retry_s=s.llm_retry_s,
            fallback_attempts=s.fallback_attempts,
            middleware=list(self.middleware.default),
            hooked_middleware=self.middleware.hooked(),
            capabilities=await self._live_capabilities(),
        )

    async def _live_capabilities(self) -> list[CapabilityInfo]:
        """What the planner is told: the capabilities of the published pools that are live.

        Best effort, within `CATALOGUE_TIMEOUT_S`: when Temporal or Postgres cannot answer,
        the task plans as it did before profiles existed (the built-ins, unchecked) rather
        than waiting at its start; the warning says why.
        """
        if self.registry is None:
            return []
        try:
            live = await asyncio.wait_for(
                self.registry.live_pools(self.settings.queue_prefix, self.pools),
                CATALOGUE_TIMEOUT_S,
            )
        except (RPCError, TimeoutError, OSError, *DATABASE_ERRORS) as error:
            activity.logger.warning(
                "live capabilities unknown (%s: %s); the planner is told the built-ins",
                type(error).__name__,
                error,
            )
            return []
        return capability_catalogue(live)

    @activity.defn(name="resolve_pool")
    async def resolve_pool(self, request: PoolRequest) -> PoolChoice:
        """The smallest live pool whose capabilities include all of `request.capabilities`.

        Published pools (those `mahsm worker` runs) are asked about first; built-in pool
        queues nobody published (a bare `Worker` on one) only when no published pool is live.

        Queues in `request.avoid` (they did not pick up work in time) are chosen only when no
        other pool is live. Raises a retryable error while no worker serves the capabilities:
        the workflow's retry policy bounds how long a subtask waits for one.
        """
        published = (
            {p.task_queue: p for p in await self.registry.pools(request.queue_prefix)}
            if self.registry is not None
            else {}
        )
        queues = candidate_pools(request.queue_prefix, request.capabilities, known=published)
        live: list[tuple[str, list[PoolWorker]]] = []
        for group in _ask_order(queues, published):
            found = await asyncio.gather(*(self.pools.workers(q) for q in group))
            live += [(q, w) for q, w in zip(group, found, strict=True) if w]
            if any(q not in request.avoid for q, _ in live):
                break
        preferred = [(q, w) for q, w in live if q not in request.avoid] or live
        if preferred:
            queue, workers = preferred[0]
            registered = published.get(queue)
            profile = registered.profile if registered is not None else None
            return PoolChoice(
                task_queue=queue,
                workers=sorted(w.identity for w in workers),
                profile=profile,
                calls_queue=None if profile else await self._colocated(request, workers),
            )
        needed = ",".join(sorted(c.value for c in request.capabilities))
        start = (
            f"MAHSM_WORKER_CAPABILITIES={needed} mahsm worker"
            if set(request.capabilities) <= set(Capability)
            else "a worker with an agent profile serving them (MAHSM_PROFILES, docs/profiles.md)"
        )
        raise ApplicationError(
            f"no worker serves capabilities [{needed}]; start {start}",
            type="NoWorkerForCapabilities",
        )

    async def _colocated(self, request: PoolRequest, pool: list[PoolWorker]) -> str | None:
        """The task's own queue, when every worker polling it also polls the chosen pool.

        Those workers run the pool's calls the same way (`build_workers` registers the
        default pool's activities on both queues), and a call scheduled on the queue of the
        workflow that schedules it starts eagerly: handed back with the workflow task, with
        no trip through the server's matching (docs/decisions.md). Identities are per group
        of workers (`workers.main`), so a process's groups are never mistaken for one.
        """
        own = tasks_queue(request.queue_prefix)
        if own in request.avoid:
            return None
        polling = {w.identity for w in await self.pools.workers(own)}
        return own if polling and polling <= {w.identity for w in pool} else None


def _ask_order(queues: list[str], published: Mapping[str, object]) -> Iterator[list[str]]:
    """Groups of candidate queues to ask about in turn (each list is smallest sets first).

    The published candidates (usually one or two) come first; then the other built-in
    supersets one size at a time, so a lookup never asks about every superset (up to 32)
    when a smaller answer exists: each question about an unused queue makes the server
    create it.
    """
    first = [q for q in queues if q in published]
    if first:
        yield first
    rest = [q for q in queues if q not in published]
    for _, same_size in groupby(rest, key=lambda q: len(pool_capabilities(q))):
        yield list(same_size)
