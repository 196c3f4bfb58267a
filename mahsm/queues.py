"""Task-queue names. The scheme is documented in docs/architecture.md ("Capability pools").

- `mahsm-tasks`: `TaskWorkflow`, planning and aggregation LLM calls, the store, pool lookup.
- `mahsm-pool.<caps>`: one queue per capability pool, named by its sorted capability set.
  A worker declaring capabilities C polls `pool_queue(C)`; it runs `AgentWorkflow` and the
  LLM and tool activities of subtasks whose required capabilities are a subset of C.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import combinations

from mahsm.contracts.task import Capability

TASKS_QUEUE = "mahsm-tasks"
POOL_PREFIX = "mahsm-pool."


def pool_queue(capabilities: Iterable[Capability | str]) -> str:
    """The task queue of the pool serving exactly `capabilities`."""
    names = sorted({Capability(c).value for c in capabilities})
    if not names:
        raise ValueError("a capability pool needs at least one capability")
    return POOL_PREFIX + "+".join(names)


def pool_capabilities(queue: str) -> frozenset[Capability]:
    """The capability set a pool queue name stands for."""
    if not queue.startswith(POOL_PREFIX):
        raise ValueError(f"'{queue}' is not a MAHSM pool queue")
    return frozenset(Capability(c) for c in queue[len(POOL_PREFIX) :].split("+"))


def candidate_pools(required: Iterable[Capability | str]) -> list[str]:
    """Every pool queue able to serve `required`, smallest capability sets first."""
    need = {Capability(c) for c in required}
    rest = [c for c in Capability if c not in need]
    queues = []
    for extra in range(len(rest) + 1):
        for added in combinations(rest, extra):
            queues.append(pool_queue(need | set(added)))
    return queues


def all_pools() -> list[str]:
    """Every possible pool queue name."""
    caps = list(Capability)
    return [pool_queue(combo) for n in range(1, len(caps) + 1) for combo in combinations(caps, n)]
