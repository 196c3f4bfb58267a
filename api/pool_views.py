"""Pools as the API sees them: published pools (`agent_pools`) that some worker polls.

Shared by `GET /agents` and by the check that a request names only known capabilities.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import asyncpg
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.service import RPCError

from mahsm.api.deps import ApiError, Backends
from mahsm.api.task_access import RPC_TIMEOUT, raise_unavailable
from mahsm.contracts.common import Capability
from mahsm.contracts.pipeline import AgentStep, ParallelStep, Step, ToolStep
from mahsm.contracts.task import TaskRequest
from mahsm.pool_liveness import PoolDirectory
from mahsm.profiles.registry import PoolRegistry, RegisteredPool

# Describe calls in flight at once.
_CONCURRENCY = 16


def pool_directory(app: FastAPI, client: Client) -> PoolDirectory:
    """The process's `PoolDirectory` (its cache is shared by every request)."""
    directory: PoolDirectory | None = getattr(app.state, "pool_directory", None)
    if directory is None:
        directory = app.state.pool_directory = PoolDirectory(
            client, concurrency=_CONCURRENCY, rpc_timeout=RPC_TIMEOUT
        )
    return directory


def pool_registry(app: FastAPI, pool: asyncpg.Pool) -> PoolRegistry:
    """The process's `PoolRegistry` (reads cached briefly)."""
    registry: PoolRegistry | None = getattr(app.state, "pool_registry", None)
    if registry is None:
        registry = app.state.pool_registry = PoolRegistry(pool)
    return registry


async def live_published_pools(app: FastAPI, backends: Backends) -> list[RegisteredPool]:
    """The published pools of this deployment that some worker polls now."""
    registry = pool_registry(app, await backends.pool())
    directory = pool_directory(app, await backends.temporal())
    try:
        return await registry.live_pools(backends.settings.queue_prefix, directory)
    except RPCError as error:
        raise_unavailable(error)


async def check_capabilities(app: FastAPI, request: TaskRequest, backends: Backends) -> None:
    """422 when a given plan or pipeline names a capability no one knows, listing the known.

    Known: the built-ins (a subtask needing one waits for a worker, as always) and every
    capability a live pool serves.
    """
    named: dict[str, list[str | int]] = {}
    for capability, loc in _named(request):
        named.setdefault(capability, loc)
    if all(c in set(Capability) for c in named):
        return
    live = await live_published_pools(app, backends)
    known = set(Capability) | {c for p in live for c in p.capabilities}
    unknown = {c: loc for c, loc in named.items() if c not in known}
    if not unknown:
        return
    listed = ", ".join(sorted(known))
    details: list[dict[str, Any]] = [
        {
            "loc": loc,
            "msg": f"unknown capability '{c}': no live pool serves it; known: {listed}",
            "type": "unknown_capability",
        }
        for c, loc in sorted(unknown.items())
    ]
    raise ApiError(
        422,
        code="unknown_capability",
        message=f"Invalid request: unknown capabilities {', '.join(sorted(unknown))}; use one"
        f" of: {listed} (or start a worker whose agent profile serves them, docs/profiles.md)",
        details=details,
    )


def _named(request: TaskRequest) -> Iterator[tuple[str, list[str | int]]]:
    """Every capability the request names, with where (the first place wins)."""
    if request.plan is not None:
        for index, subtask in enumerate(request.plan.subtasks):
            for capability in subtask.required_capabilities:
                yield capability, ["body", "plan", "subtasks", index, "required_capabilities"]
    if request.pipeline is not None:
        yield from _in_steps(request.pipeline.steps)


def _in_steps(steps: list[Step]) -> Iterator[tuple[str, list[str | int]]]:
    for step in steps:
        if isinstance(step, AgentStep | ToolStep):
            for capability in step.capabilities or []:
                yield capability, ["body", "pipeline", "steps", step.name, "capabilities"]
        elif isinstance(step, ParallelStep):
            yield from _in_steps(step.steps)
