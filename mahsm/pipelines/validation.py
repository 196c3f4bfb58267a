"""Everything that stops a pipeline from running, found before anything runs.

Each problem names the step and the field (`steps.draft.prompt`) and says how to fix it;
the API answers them as one 422. What the checks need from the process (its tools,
transforms and providers) is passed in, so the API and the workflow check alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from temporalio import workflow

from mahsm.contracts.pipeline import (
    MAX_STEPS,
    AgentStep,
    LLMStep,
    ParallelStep,
    Pipeline,
    SignatureStep,
    Step,
    ToolStep,
    TransformStep,
    model_chain,
)
from mahsm.pipelines.graph import all_steps, nodes
from mahsm.pipelines.templates import placeholders, template_strings

_INPUT_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}


@dataclass(frozen=True)
class PipelineProblem:
    """One reason a pipeline (or its inputs) cannot run."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class Catalogue:
    """What the running process offers; None skips that check (nothing to check against)."""

    tools: Callable[[str], bool] | None = None
    transforms: Callable[[str], str | None] | None = None
    """Given a function name, why it cannot be used (None when it can)."""
    providers: frozenset[str] | None = None


def validate_pipeline(
    pipeline: Pipeline, catalogue: Catalogue | None = None
) -> list[PipelineProblem]:
    """Every problem of `pipeline`; an empty list means it can run."""
    catalogue = catalogue or Catalogue()
    problems: list[PipelineProblem] = []
    steps = list(all_steps(pipeline.steps))
    if len(steps) > MAX_STEPS:
        problems.append(
            PipelineProblem("steps", f"{len(steps)} steps; at most {MAX_STEPS} are allowed")
        )
    names: set[str] = set()
    for step in steps:
        if step.name in names or step.name in pipeline.inputs:
            what = "an input" if step.name in pipeline.inputs else "another step"
            problems.append(
                PipelineProblem(
                    f"steps.{step.name}.name",
                    f"'{step.name}' is also {what}'s name; names must be unique",
                )
            )
        names.add(step.name)
    graph = nodes(pipeline)
    for node in graph:
        for dependency in node.depends_on:
            if dependency not in names:
                problems.append(
                    PipelineProblem(
                        f"steps.{node.step.name}.depends_on",
                        f"names no step '{dependency}'; steps are: {', '.join(sorted(names))}",
                    )
                )
            elif dependency == node.step.name:
                problems.append(
                    PipelineProblem(
                        f"steps.{node.step.name}.depends_on", "a step cannot depend on itself"
                    )
                )
    if problems:
        return problems
    upstream = _upstream({node.step.name: node.depends_on for node in graph})
    if upstream is None:
        return [PipelineProblem("steps", "the dependencies form a cycle; remove one depends_on")]
    for step in steps:
        problems += _check_step(step, pipeline, upstream[step.name], catalogue)
    for name, template in pipeline.outputs.items():
        problems += _check_template(f"outputs.{name}", template, pipeline, names, None)
    return problems


def validate_inputs(pipeline: Pipeline, inputs: Mapping[str, Any]) -> list[PipelineProblem]:
    """Every declared input present, of its declared type, and no other."""
    problems = [
        PipelineProblem(
            f"inputs.{name}",
            f"not an input of pipeline '{pipeline.name}'"
            f" (inputs: {', '.join(pipeline.inputs) or 'none'})",
        )
        for name in inputs
        if name not in pipeline.inputs
    ]
    for name, kind in pipeline.inputs.items():
        if name not in inputs:
            problems.append(PipelineProblem(f"inputs.{name}", f"missing; give a {kind} value"))
            continue
        allowed = _INPUT_TYPES.get(kind)
        value = inputs[name]
        wrong_bool = isinstance(value, bool) and kind in ("int", "float")
        if allowed is not None and (not isinstance(value, allowed) or wrong_bool):
            problems.append(
                PipelineProblem(f"inputs.{name}", f"expected {kind}, got {type(value).__name__}")
            )
    return problems


def _upstream(graph: dict[str, list[str]]) -> dict[str, set[str]] | None:
    """Every step's transitive dependencies, or None when there is a cycle."""
    found: dict[str, set[str]] = {}
    visiting: set[str] = set()

    def visit(name: str) -> set[str] | None:
        if name in found:
            return found[name]
        if name in visiting:
            return None
        visiting.add(name)
        result: set[str] = set()
        for dependency in graph[name]:
            above = visit(dependency)
            if above is None:
                return None
            result |= above | {dependency}
        visiting.discard(name)
        found[name] = result
        return result

    for name in graph:
        if visit(name) is None:
            return None
    return found


def _check_step(
    step: Step, pipeline: Pipeline, upstream: set[str], catalogue: Catalogue
) -> list[PipelineProblem]:
    where = f"steps.{step.name}"
    problems: list[PipelineProblem] = []
    templates: dict[str, Any] = {}
    if isinstance(step, AgentStep):
        templates["description"] = step.description
    elif isinstance(step, LLMStep):
        templates["prompt"] = step.prompt
        if step.system is not None:
            templates["system"] = step.system
        if step.response_schema is not None and step.response_schema.get("type") != "object":
            problems.append(
                PipelineProblem(
                    f"{where}.response_schema", 'must be a JSON schema with "type": "object"'
                )
            )
    elif isinstance(step, ToolStep):
        templates["args"] = step.args
        if catalogue.tools is not None and not catalogue.tools(step.tool):
            problems.append(
                PipelineProblem(f"{where}.tool", f"no tool named '{step.tool}' is registered")
            )
    elif isinstance(step, TransformStep):
        if step.args is not None:
            templates["args"] = step.args
        reason = catalogue.transforms(step.function) if catalogue.transforms else None
        if reason:
            problems.append(PipelineProblem(f"{where}.function", reason))
    elif isinstance(step, SignatureStep):
        problems += _check_signature(step, catalogue, templates)
    elif isinstance(step, ParallelStep):
        pass
    for model in model_chain(step.model):
        provider = model.split("/", 1)[0]
        if catalogue.providers is not None and provider not in catalogue.providers:
            problems.append(
                PipelineProblem(
                    f"{where}.model",
                    f"unknown provider '{provider}' in '{model}';"
                    f" known: {', '.join(sorted(catalogue.providers))}",
                )
            )
    for field, value in templates.items():
        for template in template_strings(value):
            problems += _check_template(f"{where}.{field}", template, pipeline, upstream, step.name)
    return problems


def _check_signature(
    step: SignatureStep, catalogue: Catalogue, templates: dict[str, Any]
) -> list[PipelineProblem]:
    # DSPy loads on the first signature step (API: once; it is slow to import). A workflow
    # runs this too: its sandbox must reuse the worker's DSPy, not import a second copy.
    with workflow.unsafe.imports_passed_through():
        from mahsm.dspy.signatures import input_templates, signature_problems, step_signature

    where = f"steps.{step.name}"
    problems = [PipelineProblem(f"{where}.{f}", m) for f, m in signature_problems(step)]
    if not problems:
        templates["inputs"] = input_templates(step, step_signature(step))
    for tool in step.tools:
        if catalogue.tools is not None and not catalogue.tools(tool):
            problems.append(
                PipelineProblem(f"{where}.tools", f"no tool named '{tool}' is registered")
            )
    return problems


def _check_template(
    field: str, template: str, pipeline: Pipeline, visible: set[str], step: str | None
) -> list[PipelineProblem]:
    problems = []
    for path in placeholders(template):
        head = path[0]
        if head in pipeline.inputs or head in visible:
            continue
        names = {s.name for s in all_steps(pipeline.steps)}
        if head in names:
            fix = f"add '{head}' to depends_on of '{step}'" if step else "it is not a step"
            message = (
                f"{{{'.'.join(path)}}} names step '{head}', which does not run before it; {fix}"
            )
        else:
            message = (
                f"{{{'.'.join(path)}}} names no input or step; inputs:"
                f" {', '.join(pipeline.inputs) or 'none'} (write {{{{ and }}}} for literal braces)"
            )
        problems.append(PipelineProblem(field, message))
    return problems
