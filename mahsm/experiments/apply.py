"""A config applied to a target: the `TaskRequest` one branch runs, and submit-time checks.

Every run of a config goes through the task engine: a description target is a task (planned
as usual), a pipeline target a pipeline run, a program target a one-step pipeline running the
DSPy program as a `signature` step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from mahsm.contracts.pipeline import (
    LLMStep,
    ParallelStep,
    Pipeline,
    SignatureStep,
    Step,
)
from mahsm.contracts.task import TaskOptions, TaskRequest
from mahsm.experiments.configs import ExperimentConfig
from mahsm.pipelines.files import run_description
from mahsm.pipelines.templates import placeholders, render
from mahsm.pipelines.validation import validate_inputs, validate_pipeline

if TYPE_CHECKING:
    from mahsm.experiments.models import ExperimentRequest, Target

_PIPELINE_ONLY = ("temperature", "max_tokens", "artifact_version")


def program_pipeline(target: Target, inputs: dict[str, Any]) -> Pipeline:
    """A DSPy program target as a pipeline of one signature step, its inputs the row's."""
    step = SignatureStep(name="program", program=target.program, artifact=target.artifact)
    return Pipeline(
        name="program",
        description=f"Run DSPy program {target.program}",
        inputs={name: "any" for name in inputs},
        steps=[step],
        outputs={},
    )


def _override(step: Step, config: ExperimentConfig) -> Step:
    if isinstance(step, ParallelStep):
        return step.model_copy(update={"steps": [_override(s, config) for s in step.steps]})
    update: dict[str, Any] = {}
    if isinstance(step, LLMStep | SignatureStep):
        if config.temperature is not None:
            update["temperature"] = config.temperature
        if config.max_tokens is not None:
            update["max_tokens"] = config.max_tokens
    if (
        isinstance(step, SignatureStep)
        and config.artifact_version is not None
        and step.artifact is not None
    ):
        update["artifact"] = step.artifact.split("@")[0] + f"@{config.artifact_version}"
    if config.model is not None and step.model is not None:
        update["model"] = config.model  # the config's model wins over a step's own
    return step.model_copy(update=update) if update else step


def configured_pipeline(pipeline: Pipeline, config: ExperimentConfig) -> Pipeline:
    """`pipeline` with the config's sampling, artifact and model overrides in every step."""
    return pipeline.model_copy(update={"steps": [_override(s, config) for s in pipeline.steps]})


def options(config: ExperimentConfig) -> TaskOptions:
    """The task options a config sets (unset fields keep the engine's defaults)."""
    fields = config.model_dump(
        include={"model", "max_iterations", "max_parallel", "middleware"}, exclude_none=True
    )
    return TaskOptions(**fields)


def branch_request(
    request: ExperimentRequest, config: ExperimentConfig, row_inputs: dict[str, Any]
) -> TaskRequest:
    """The task one branch runs: the target, with the config applied, on one row's values."""
    target = request.target
    values = {**request.inputs, **row_inputs, **config.inputs}
    if target.description is not None:
        return TaskRequest(
            description=str(render(target.description, values)),
            options=options(config),
            user_id=request.user_id,
        )
    if target.program is not None:
        pipeline = program_pipeline(target, values)
    else:
        assert target.pipeline is not None, "pipeline_ref is resolved before the workflow starts"
        pipeline = target.pipeline
    pipeline = configured_pipeline(pipeline, config)
    inputs = {name: value for name, value in values.items() if name in pipeline.inputs}
    return TaskRequest(
        description=run_description(pipeline),
        options=options(config),
        pipeline=pipeline,
        inputs=inputs,
        user_id=request.user_id,
    )


def config_problems(request: ExperimentRequest) -> list[str]:
    """Every config that cannot run, as `configs.<index>.<field>: <problem>`."""
    target = request.target
    if target.pipeline_ref is not None or request.dataset_ref is not None:
        return []  # checked once the API has resolved them (a definition, the rows)
    problems: list[str] = []
    rows = [row.inputs for row in request.dataset or []] or [{}]
    if target.description is not None:
        for index, config in enumerate(request.configs):
            for name in _PIPELINE_ONLY:
                if getattr(config, name) is not None:
                    problems.append(
                        f"configs.{index}.{name}: applies to pipeline and program targets"
                        " (their llm and signature steps); a description target is planned"
                    )
            if config.inputs:
                problems.append(
                    f"configs.{index}.inputs: a description target has no inputs; put"
                    " template values in the dataset rows or in `inputs`"
                )
        for row_index, row in enumerate(rows):
            values = {**request.inputs, **row}
            for path in placeholders(target.description):
                if path and path[0] not in values:
                    where = f"dataset.{row_index}" if request.dataset else "inputs"
                    problems.append(
                        f"target.description: {{{'.'.join(path)}}} has no value in {where};"
                        " give it there"
                    )
        if problems:
            return problems
    declared = target.pipeline.inputs if target.pipeline is not None else None
    for index, config in enumerate(request.configs):
        unknown = [name for name in config.inputs if declared is not None and name not in declared]
        for name in unknown:
            problems.append(
                f"configs.{index}.inputs.{name}: not an input of the pipeline"
                f" (inputs: {', '.join(declared or {}) or 'none'})"
            )
        if unknown:
            continue
        # The whole task is built and checked on the first row; the other rows differ only
        # in their values, so only those are checked (cheap, even for 1000 rows x 64 configs:
        # this runs whenever the workflow's input is read).
        pipeline = None
        for row_index, row in enumerate(rows):
            where = f" (dataset row {row_index})" if request.dataset else ""
            if pipeline is not None and target.program is None:
                values = {**request.inputs, **row, **config.inputs}
                inputs = {name: value for name, value in values.items() if name in pipeline.inputs}
                found = validate_inputs(pipeline, inputs)
            else:
                try:
                    task = branch_request(request, config, row)
                except ValidationError as error:
                    for item in error.errors():
                        loc = ".".join(str(p) for p in item["loc"])
                        problems.append(f"configs.{index}: {loc}: {item['msg']}{where}")
                    break
                if task.pipeline is None:
                    break  # a description target: its placeholders were checked above
                pipeline = task.pipeline
                found = validate_pipeline(pipeline) + validate_inputs(pipeline, task.inputs)
            for problem in found:
                problems.append(f"configs.{index}: {problem}{where}")
            if found:
                break
    return problems
