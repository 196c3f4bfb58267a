"""The worker process: which workflows and activities run on which task queues.

One process serves the orchestration queue (`<prefix>-tasks`) and the queue of the capability
pool it declares (`<prefix>-pool.<caps>`, from `MAHSM_WORKER_CAPABILITIES`).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import os
import signal
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

import asyncpg
import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from mahsm.activities.blobs import BlobStore
from mahsm.activities.engine import EngineActivities
from mahsm.activities.estimate import EstimateActivities
from mahsm.activities.experiments import ExperimentActivities
from mahsm.activities.llm.activity import LLMActivities
from mahsm.activities.llm.breaker import BreakerConfig, CircuitBreakers
from mahsm.activities.llm.middleware.activity import MiddlewareActivities
from mahsm.activities.llm.middleware.registry import MiddlewareRegistry
from mahsm.activities.llm.registry import ProviderRegistry
from mahsm.activities.llm.token_stream import TokenPublisher
from mahsm.activities.optimize import OptimizeActivities
from mahsm.activities.prompt_artifacts import PromptActivities
from mahsm.activities.store import StoreActivities
from mahsm.activities.tools.activity import ToolActivities
from mahsm.activities.tools.mcp_tools.worker import start_mcp_tools
from mahsm.activities.tools.registry import ToolRegistry, default_registry
from mahsm.activities.tools.sql import create_sql_pool
from mahsm.activities.transform import TransformActivities
from mahsm.contracts.profile import AgentProfile
from mahsm.contracts.task import Capability
from mahsm.db.migrate import migrate
from mahsm.db.pool import create_pool
from mahsm.heap import settle_heap
from mahsm.logging import configure_logging
from mahsm.metrics import serve_metrics
from mahsm.profiles.loading import load_profiles
from mahsm.profiles.registry import PoolRegistry
from mahsm.prompt.store import ArtifactStore
from mahsm.queues import pool_queue, tasks_queue
from mahsm.settings import Settings, SettingsError, get_settings
from mahsm.temporal_client import connect
from mahsm.temporal_metrics import TemporalMetrics
from mahsm.tracing import configure_tracing
from mahsm.workers.profile_pools import (
    PublishingWorker,
    check_profiles,
    profile_catalogue,
)
from mahsm.workers.workflow_runner import workflow_runner
from mahsm.workflows.agent_workflow import AgentWorkflow
from mahsm.workflows.estimate_workflow import PlanEstimateWorkflow
from mahsm.workflows.experiment_workflow import ExperimentWorkflow
from mahsm.workflows.optimize_workflow import OptimizeWorkflow
from mahsm.workflows.task_workflow import TaskWorkflow

log = structlog.get_logger(__name__)


def build_workers(
    *,
    client: Client,
    pool: asyncpg.Pool,
    settings: Settings,
    capabilities: Sequence[Capability] | None = None,
    serve_tasks: bool = True,
    providers: ProviderRegistry | None = None,
    tools: ToolRegistry | None = None,
    sql_pool: asyncpg.Pool | None = None,
    profiles: Sequence[AgentProfile] | None = None,
) -> list[Worker]:
    """The Temporal workers of one process; activity objects are built here, once.

    `sql_pool` is the pool `sql_query` reads (`MAHSM_SQL_TOOL_DATABASE_URL`), never `pool`;
    without it the tool tells the model it is not configured. `profiles` (default: those of
    `MAHSM_PROFILES` and entry points) each get a pool worker of their own.
    """
    blobs = BlobStore.from_settings(pool, settings)
    store = StoreActivities(pool=pool, blobs=blobs)
    # One tool catalogue feeds both the tools offered to the model and the tools run.
    catalogue = tools if tools is not None else default_registry()
    middleware = MiddlewareRegistry.from_settings(settings)  # fails at start on unknown names
    llm = LLMActivities(
        settings=settings,
        blobs=blobs,
        registry=providers,
        tools=catalogue,
        projection=store.projection,
        breakers=CircuitBreakers(pool, BreakerConfig.from_settings(settings)),
        middleware=middleware,
        tokens=TokenPublisher(pool),  # live text of running calls (NOTIFY)
    )
    registry = PoolRegistry(pool)
    engine = EngineActivities(
        settings=settings, client=client, middleware=middleware, registry=registry
    )
    hooks = MiddlewareActivities(registry=middleware)
    tool_activities = ToolActivities(
        pool=pool, settings=settings, blobs=blobs, registry=catalogue, sql_pool=sql_pool
    )
    common = {
        "identity": _group_identity(client),
        "max_concurrent_activities": settings.worker_max_concurrent_activities,
        "max_concurrent_workflow_tasks": settings.worker_max_concurrent_workflow_tasks,
        "graceful_shutdown_timeout": timedelta(seconds=settings.worker_shutdown_grace_s),
    }
    caps = list(capabilities if capabilities is not None else settings.worker_capabilities)
    workers = []
    if serve_tasks:
        workers.append(
            Worker(
                client,
                task_queue=tasks_queue(settings.queue_prefix),
                workflows=[
                    TaskWorkflow,
                    OptimizeWorkflow,
                    ExperimentWorkflow,
                    PlanEstimateWorkflow,
                ],
                workflow_runner=workflow_runner(),
                activities=[
                    llm.complete,
                    # With a default pool in this process, its calls may run on the task's
                    # own queue (`resolve_pool`: eager, no trip through matching).
                    *([tool_activities.execute] if caps else []),
                    store.store_task,
                    store.blob_put_text,
                    engine.engine_defaults,
                    engine.resolve_pool,
                    TransformActivities().run,
                    hooks.run_hook,
                    PromptActivities(pool=pool, tools=catalogue).get,
                    OptimizeActivities(pool=pool, client=client, settings=settings).run,
                    *_experiment_activities(settings, blobs),
                    EstimateActivities(
                        pool=pool, settings=settings, registry=llm.registry
                    ).estimate_plan,
                ],
                **common,  # type: ignore[arg-type]
            )
        )
    if profiles is None:
        profiles = load_profiles(settings.profiles, load_entry_points=settings.profile_entry_points)
    check_profiles(profiles, caps)

    def pool_worker(queue_caps: Sequence[str], profile: AgentProfile | None) -> Worker:
        own = catalogue if profile is None else profile_catalogue(profile, catalogue)
        pool_llm, pool_tools = llm, tool_activities
        if own is not catalogue:  # the same activities, with the profile's tool catalogue
            pool_llm, pool_tools = copy.copy(llm), copy.copy(tool_activities)
            pool_llm.tools = pool_tools.registry = own
        return PublishingWorker(
            client,
            task_queue=pool_queue(settings.queue_prefix, queue_caps),
            workflows=[AgentWorkflow],
            workflow_runner=workflow_runner(),
            activities=[pool_llm.complete, pool_tools.execute, store.blob_put_text],
            registry=registry,
            prefix=settings.queue_prefix,
            profile=profile,
            artifacts=ArtifactStore(pool),
            catalogue=own,
            **common,
        )

    if caps:
        workers.append(pool_worker(caps, None))
    workers += [pool_worker(p.capabilities, p) for p in profiles]
    return workers


_group_numbers = itertools.count(1)


def _group_identity(client: Client) -> str:
    """The identity all workers of one `build_workers` call poll with: `pid@host+N`.

    One per group, not the client's: `resolve_pool` tells groups apart by identity, and a
    process may build several (tests, embedding code) or poll with bare workers of its own.
    """
    return f"{client.identity}+{next(_group_numbers)}"


def _experiment_activities(settings: Settings, blobs: BlobStore) -> list[Callable[..., Any]]:
    experiments = ExperimentActivities(settings=settings, blobs=blobs)
    return [experiments.score, experiments.log_mlflow]


async def run(settings: Settings) -> None:
    """Connect, migrate, and run the workers until SIGINT/SIGTERM.

    A stop lets in-flight activities finish for up to `worker_shutdown_grace_s` (the workers'
    graceful shutdown timeout) before they are cancelled; all workers drain at once, so a
    stop takes at most one grace period.
    """
    if settings.database_url is None:
        raise SettingsError("MAHSM_DATABASE_URL is not set: `mahsm up` sets it, or set it yourself")
    database_url = settings.database_url.get_secret_value()
    applied = await migrate(database_url)
    if applied:
        log.info("migrations applied", versions=applied)
    tracing = configure_tracing(service_name="mahsm-worker")  # before the client: its plugin
    temporal_metrics = None
    if settings.metrics_port is not None:
        temporal_metrics = TemporalMetrics()
        serve_metrics(settings.metrics_port)
    runtime = temporal_metrics.runtime if temporal_metrics is not None else None
    client = await connect(settings, runtime=runtime)
    draining = asyncio.create_task(temporal_metrics.run()) if temporal_metrics else None
    # Its users change no session state (statements and transactions; the SQL tool has a
    # pool of its own), so connections go back without a reset round trip.
    pool = await create_pool(database_url, max_size=settings.database_pool_max, session_reset=False)
    sql_url = settings.sql_tool_database_url
    sql_pool = None if sql_url is None else await create_sql_pool(sql_url.get_secret_value())
    mcp = await start_mcp_tools(settings)  # a server that is down never stops the start
    tools = mcp.add_to(default_registry().copy()) if mcp is not None else None
    workers = build_workers(
        client=client, pool=pool, settings=settings, sql_pool=sql_pool, tools=tools
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with AsyncExitStack() as running:
            for worker in workers:  # if one fails to start, those started are shut down
                await running.enter_async_context(worker)
            settle_heap()  # everything built so far lives as long as the process
            log.info(
                "worker polling",
                queues=[w.task_queue for w in workers],
                identity=client.identity,
                tracing=tracing.destination or "off",
                trace_sampling=tracing.sampling,
                metrics_port=settings.metrics_port,
            )
            if settings.ready_file is not None:
                settings.ready_file.write_text(str(os.getpid()))
            await stop.wait()
            log.info(
                "worker stopping; in-flight activities may finish",
                grace_s=settings.worker_shutdown_grace_s,
            )
            await asyncio.gather(*(worker.shutdown() for worker in workers))
            log.info("worker stopped")
    finally:
        if mcp is not None:
            await mcp.close()
        if sql_pool is not None:
            await sql_pool.close()
        await pool.close()
        if draining:
            draining.cancel()
        await asyncio.to_thread(tracing.flush)  # bounded by the export timeout


def main() -> None:
    """Entry point of `python -m mahsm.workers` and `mahsm worker`."""
    try:
        settings = get_settings()
    except SettingsError as error:
        raise SystemExit(f"{error}") from None
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    asyncio.run(run(settings))
