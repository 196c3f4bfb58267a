"""A pipeline as a plan: one node per step, dependencies made explicit.

Steps without `depends_on` follow the previous step; members of a `parallel` group follow
what the group follows, and the group's node waits for all its members (its output is
theirs, by name). A group's `is_critical: false`, `timeout_s` and `model` apply to members
that do not set their own. Pure and deterministic: the workflow compiles the pipeline it is
given, so its history holds the pipeline, not the plan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from mahsm.contracts.common import Capability
from mahsm.contracts.pipeline import (
    AgentStep,
    LLMStep,
    ParallelStep,
    Pipeline,
    SignatureStep,
    Step,
    StepKind,
    ToolStep,
    TransformStep,
)
from mahsm.contracts.task import Plan, Subtask

ToolCapabilities = Callable[[str], list[Capability] | None]
"""The capabilities a tool is registered for (None: every capability, or unknown)."""

DEFAULT_TOOL_CAPABILITY = Capability.DATA_ANALYSIS


@dataclass(frozen=True)
class Node:
    """One step with its resolved dependencies and the group it belongs to."""

    step: Step
    depends_on: list[str]
    group: str | None


def nodes(pipeline: Pipeline) -> list[Node]:
    """Every step, members after their group's predecessors, groups after their members."""
    found: list[Node] = []

    def visit(steps: list[Step], before: list[str], group: ParallelStep | None) -> None:
        previous = before
        for step in steps:
            if group is not None:
                step = _inherit(step, group)
            if step.depends_on is not None:
                depends_on = list(step.depends_on)
            else:
                depends_on = before if group is not None else previous
            if isinstance(step, ParallelStep):
                visit(step.steps, depends_on, step)
                depends_on = [member.name for member in step.steps]
            found.append(Node(step, depends_on, group.name if group else None))
            previous = [step.name]

    visit(pipeline.steps, [], None)
    return found


def all_steps(steps: list[Step]) -> Iterator[Step]:
    """Every step, members of groups included, in file order."""
    for step in steps:
        yield step
        if isinstance(step, ParallelStep):
            yield from all_steps(step.steps)


def compile_pipeline(pipeline: Pipeline, tool_capabilities: ToolCapabilities) -> Plan:
    """The plan the engine runs for `pipeline`. Check it with `validate_pipeline` first."""
    subtasks = [
        Subtask(
            id=node.step.name,
            description=_summary(node.step),
            required_capabilities=_capabilities(node.step, tool_capabilities),
            depends_on=node.depends_on,
            kind=StepKind(node.step.kind),
            step=None if isinstance(node.step, ParallelStep) else node.step,
        )
        for node in nodes(pipeline)
    ]
    return Plan(subtasks=subtasks, rationale=f"pipeline {pipeline.name}")


def _inherit(step: Step, group: ParallelStep) -> Step:
    update: dict[str, object] = {}
    if not group.is_critical:
        update["is_critical"] = False
    if step.timeout_s is None and group.timeout_s is not None:
        update["timeout_s"] = group.timeout_s
    if step.model is None and group.model is not None:
        update["model"] = group.model
    return step.model_copy(update=update) if update else step


def _capabilities(step: Step, tool_capabilities: ToolCapabilities) -> list[Capability]:
    if isinstance(step, AgentStep):
        return list(step.capabilities)
    if isinstance(step, ToolStep):
        if step.capabilities:
            return list(step.capabilities)
        registered = tool_capabilities(step.tool)
        if registered and DEFAULT_TOOL_CAPABILITY not in registered:
            return sorted(registered)[:1]
        return [DEFAULT_TOOL_CAPABILITY]
    return []  # llm, transform and group nodes run on the task's own queue


def _summary(step: Step) -> str:
    if isinstance(step, AgentStep):
        return step.description
    if isinstance(step, LLMStep):
        return "llm: " + step.prompt[:200]
    if isinstance(step, ToolStep):
        return f"tool: {step.tool}"
    if isinstance(step, TransformStep):
        return f"transform: {step.function}"
    if isinstance(step, SignatureStep):
        return (
            f"signature ({step.module}): {step.signature or step.signature_class or step.program}"
        )
    return "parallel: " + ", ".join(member.name for member in step.steps)
