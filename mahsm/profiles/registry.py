"""Which pool queues exist and which profile serves each: the `agent_pools` table.

Workers publish their pools when they start; the pool lookup, the planner's capability list
and `GET /agents` read them. Liveness is not stored here: a pool counts only while some
worker polls its queue (`mahsm.pool_liveness`, the one rule).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from mahsm.contracts.common import BUILTIN_CAPABILITY_DESCRIPTIONS, Capability
from mahsm.contracts.profile import CapabilityInfo, PoolProfile
from mahsm.pool_liveness import PoolDirectory
from mahsm.queues import pool_capabilities

CACHE_S = 2.0
DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclass(frozen=True)
class RegisteredPool:
    """A pool queue a worker published, with the profile serving it (None: the default agent)."""

    task_queue: str
    capabilities: frozenset[Capability]
    profile: PoolProfile | None


class PoolRegistry:
    """Reads and writes `agent_pools`; reads are cached for `cache_s` seconds per prefix."""

    def __init__(self, pool: asyncpg.Pool, *, cache_s: float = CACHE_S) -> None:
        self._pool = pool
        self._cache_s = cache_s
        self._cached: dict[str, tuple[float, list[RegisteredPool]]] = {}
        self._lock = asyncio.Lock()

    async def publish(
        self, *, prefix: str, task_queue: str, identity: str, profile: PoolProfile | None
    ) -> None:
        """Record that a worker serves `task_queue` (with `profile`); the latest start wins."""
        await self._pool.execute(
            "INSERT INTO agent_pools (task_queue, queue_prefix, capabilities, profile,"
            " worker_identity) VALUES ($1, $2, $3, $4::jsonb, $5)"
            " ON CONFLICT (task_queue) DO UPDATE SET capabilities = EXCLUDED.capabilities,"
            " profile = EXCLUDED.profile, worker_identity = EXCLUDED.worker_identity,"
            " updated_at = now()",
            task_queue,
            prefix,
            sorted(pool_capabilities(task_queue)),
            profile.model_dump_json() if profile is not None else None,
            identity,
        )
        self._cached.pop(prefix, None)

    async def pools(self, prefix: str) -> list[RegisteredPool]:
        """Every pool queue published under `prefix`, live or not."""
        cached = self._cached.get(prefix)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        async with self._lock:
            rows = await self._pool.fetch(
                "SELECT task_queue, profile FROM agent_pools WHERE queue_prefix = $1"
                " ORDER BY task_queue",
                prefix,
            )
        found = [
            RegisteredPool(
                task_queue=row["task_queue"],
                capabilities=pool_capabilities(row["task_queue"]),
                profile=(
                    PoolProfile.model_validate_json(row["profile"])
                    if row["profile"] is not None
                    else None
                ),
            )
            for row in rows
        ]
        self._cached[prefix] = (time.monotonic() + self._cache_s, found)
        return found

    async def live_pools(self, prefix: str, directory: PoolDirectory) -> list[RegisteredPool]:
        """The published pools some worker polls now."""
        published = await self.pools(prefix)
        polled = await asyncio.gather(*(directory.is_live(p.task_queue) for p in published))
        return [p for p, live in zip(published, polled, strict=True) if live]


def capability_catalogue(pools: Sequence[RegisteredPool]) -> list[CapabilityInfo]:
    """What the planner is told: each capability the pools serve, with its description.

    A capability's description is its profiles' (joined); a built-in one served by the
    default agent has its documented default.
    """
    described: dict[str, list[str]] = {}
    profiles: dict[str, list[str]] = {}
    for pool in pools:
        for capability in sorted(pool.capabilities):
            texts = described.setdefault(capability, [])
            if pool.profile is not None:
                profiles.setdefault(capability, []).append(pool.profile.name)
                text = pool.profile.description
            else:
                text = BUILTIN_CAPABILITY_DESCRIPTIONS.get(capability, "")
            if text and text not in texts:
                texts.append(text)
    return [
        CapabilityInfo(
            name=Capability(name),
            description=" / ".join(texts) or name.replace("_", " "),
            profiles=profiles.get(name, []),
        )
        for name, texts in sorted(described.items())
    ]
