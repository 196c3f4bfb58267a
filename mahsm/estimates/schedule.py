"""How long a plan takes: its subtasks scheduled the way the engine runs them.

Every subtask starts once its dependencies finished, higher priority first, at most
`max_parallel` at once; with no limit the result is the DAG's critical path.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass

from mahsm.contracts.task import MAX_PARALLEL, Plan


@dataclass(frozen=True)
class Schedule:
    """When the last subtask finishes, and the chain of subtasks that decided it."""

    makespan_s: float
    critical_path: list[str]


def schedule(
    plan: Plan, durations: Mapping[str, float], *, max_parallel: int | None = None
) -> Schedule:
    """Simulate the engine's scheduler over `durations` (seconds by subtask id).

    Args:
        plan: A valid plan (known dependencies, no cycle).
        durations: Each subtask's duration.
        max_parallel: Subtasks at once (None: `MAX_PARALLEL`, the engine's limit).

    Returns:
        The makespan and its critical path (each subtask started when the previous one in
        the path finished: a dependency, or the subtask whose end freed a slot).
    """
    slots = max_parallel or MAX_PARALLEL
    order = {s.id: i for i, s in enumerate(plan.subtasks)}
    priority = {s.id: s.priority for s in plan.subtasks}
    waiting = {s.id: set(s.depends_on) for s in plan.subtasks}
    dependents: dict[str, list[str]] = {s.id: [] for s in plan.subtasks}
    for s in plan.subtasks:
        for dependency in s.depends_on:
            dependents[dependency].append(s.id)
    ready = [s.id for s in plan.subtasks if not s.depends_on]
    running: list[tuple[float, int, str]] = []
    finish: dict[str, float] = {}
    cause: dict[str, str | None] = {}
    now, last = 0.0, None

    def start_ready(trigger: str | None) -> None:
        ready.sort(key=lambda sid: (-priority[sid], order[sid]))
        while ready and len(running) < slots:
            sid = ready.pop(0)
            cause[sid] = trigger
            heapq.heappush(running, (now + max(0.0, durations[sid]), order[sid], sid))

    start_ready(None)
    while running:
        now, _, done = heapq.heappop(running)
        finish[done], last = now, done
        for dependent in dependents[done]:
            waiting[dependent].discard(done)
            if not waiting[dependent]:
                ready.append(dependent)
        start_ready(done)
    path: list[str] = []
    step = last
    while step is not None:
        path.append(step)
        step = cause[step]
    return Schedule(makespan_s=now, critical_path=path[::-1])
