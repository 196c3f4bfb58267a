"""Task-queue names. The scheme is documented in docs/architecture.md ("Capability pools").

Every deployment has a queue prefix (`MAHSM_QUEUE_PREFIX`, default `mahsm`):

- `<prefix>-tasks`: `TaskWorkflow`, planning and aggregation LLM calls, the store, pool lookup.
- `<prefix>-pool.<caps>`: one queue per capability pool, named by its sorted capability set.
  A worker declaring capabilities C polls `pool_queue(prefix, C)`; it runs the LLM and tool
  calls of subtasks whose required capabilities are a subset of C (agents run inline in
  their task's workflow), and `AgentWorkflow` for agents handed off to a child workflow.

`TaskWorkflow` derives the prefix from its own task queue, so deployments (and tests) that
use different prefixes never share work.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import combinations

from mahsm.contracts.common import Capability

DEFAULT_PREFIX = "mahsm"
_TASKS_SUFFIX = "-tasks"
_POOL_INFIX = "-pool."


def tasks_queue(prefix: str = DEFAULT_PREFIX) -> str:
    """The queue of `TaskWorkflow` for a deployment prefix."""
    return prefix + _TASKS_SUFFIX


def prefix_of(tasks_queue_name: str) -> str:
    """The deployment prefix of a tasks queue name."""
    return tasks_queue_name.removesuffix(_TASKS_SUFFIX)


def pool_queue(prefix: str, capabilities: Iterable[Capability | str]) -> str:
    """The task queue of the pool serving exactly `capabilities`."""
    names = sorted({Capability(c).value for c in capabilities})
    if not names:
        raise ValueError("a capability pool needs at least one capability")
    return prefix + _POOL_INFIX + "+".join(names)


def pool_capabilities(queue: str) -> frozenset[Capability]:
    """The capability set a pool queue name stands for."""
    _, sep, caps = queue.partition(_POOL_INFIX)
    if not sep:
        raise ValueError(f"'{queue}' is not a MAHSM pool queue")
    return frozenset(Capability(c) for c in caps.split("+"))


def candidate_pools(
    prefix: str, required: Iterable[Capability | str], known: Iterable[str] = ()
) -> list[str]:
    """Every pool queue able to serve `required`, smallest capability sets first.

    The candidates are the `known` pool queues (those workers published, see
    `mahsm.profiles.registry`) whose set includes `required`, and, when `required` holds only
    built-in capabilities, every built-in superset of it (workers that publish nothing, such
    as a bare `Worker` on a pool queue, are found that way too). A custom capability cannot be
    enumerated: only published pools serve it.
    """
    need = {Capability(c) for c in required}
    found = {q for q in known if need <= pool_capabilities(q)}
    builtins = set(Capability)
    if need <= builtins:
        rest = [c for c in Capability if c not in need]
        found |= {
            pool_queue(prefix, need | set(added))
            for extra in range(len(rest) + 1)
            for added in combinations(rest, extra)
        }
    return sorted(found, key=lambda q: (len(pool_capabilities(q)), q))
