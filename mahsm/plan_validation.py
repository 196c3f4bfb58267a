"""Structural checks of a plan. Pure and deterministic: the workflow calls it too."""

from __future__ import annotations

from collections.abc import Collection

from mahsm.contracts.task import MAX_SUBTASKS, Plan


def validate_plan(plan: Plan) -> list[str]:
    """Every reason `plan` cannot run as a DAG; an empty list means it can."""
    errors: list[str] = []
    ids = [subtask.id for subtask in plan.subtasks]
    seen: set[str] = set()
    for subtask_id in ids:
        if subtask_id in seen:
            errors.append(f"subtask id '{subtask_id}' is used more than once; ids must be unique")
        seen.add(subtask_id)
    if len(ids) > MAX_SUBTASKS:
        errors.append(f"plan has {len(ids)} subtasks; at most {MAX_SUBTASKS} are allowed")
    for subtask in plan.subtasks:
        for dependency in subtask.depends_on:
            if dependency not in seen:
                errors.append(f"subtask '{subtask.id}' depends on unknown subtask '{dependency}'")
            elif dependency == subtask.id:
                errors.append(f"subtask '{subtask.id}' depends on itself")
    cycle = find_cycle(plan)
    if cycle:
        errors.append("dependency cycle: " + " -> ".join(cycle))
    return errors


def unknown_capabilities(
    plan: Plan, known: Collection[str], *, suggest: Collection[str] = ()
) -> list[str]:
    """A reason per subtask that requires a capability outside `known`.

    The reason tells to use `suggest` (e.g. the live pools' capabilities), else `known`.
    """
    listed = ", ".join(sorted(suggest or known))
    errors = []
    for subtask in plan.subtasks:
        unknown = [c for c in subtask.required_capabilities if c not in known]
        if unknown:
            names = ", ".join(f"'{c}'" for c in unknown)
            errors.append(
                f"subtask '{subtask.id}' requires unknown capabilities {names}; use only: {listed}"
            )
    return errors


def find_cycle(plan: Plan) -> list[str] | None:
    """One dependency cycle as a path of ids (first id repeated at the end), or None."""
    graph = {s.id: [d for d in s.depends_on if d != s.id] for s in plan.subtasks}
    visiting: set[str] = set()
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in done or node not in graph:
            return None
        if node in visiting:
            return path[path.index(node) :] + [node]
        visiting.add(node)
        path.append(node)
        for dependency in graph[node]:
            cycle = visit(dependency)
            if cycle:
                return cycle
        path.pop()
        visiting.discard(node)
        done.add(node)
        return None

    for node in graph:
        cycle = visit(node)
        if cycle:
            return cycle
    return None


def descendants(plan: Plan, subtask_id: str) -> set[str]:
    """Every subtask that depends, directly or not, on `subtask_id`."""
    dependents: dict[str, list[str]] = {s.id: [] for s in plan.subtasks}
    for subtask in plan.subtasks:
        for dependency in subtask.depends_on:
            dependents.setdefault(dependency, []).append(subtask.id)
    found: set[str] = set()
    stack = [subtask_id]
    while stack:
        for child in dependents.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found
