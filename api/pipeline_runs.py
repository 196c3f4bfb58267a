"""A `POST /tasks` body turned into the `TaskRequest` the workflow starts with.

A pipeline run is checked completely before anything starts: the body's shape (pydantic),
then the pipeline (structure, placeholders, tools, transforms, providers) and its inputs,
all problems answered as one 422. A `pipeline_ref` is resolved to the registered definition,
which is embedded in the request so that the workflow's history holds what ran.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from mahsm.activities.llm.middleware import middleware_problems
from mahsm.api.deps import ApiError, Backends, invalid
from mahsm.api.pipeline_checks import pipeline_problems
from mahsm.api.pipeline_registry import find, known_names, versions
from mahsm.api.pipeline_schemas import TaskSubmission
from mahsm.contracts.pipeline import Pipeline
from mahsm.contracts.task import TaskRequest
from mahsm.pipelines.files import run_description
from mahsm.settings import Settings


def _problem(field: str, msg: str, kind: str = "value_error") -> dict[str, Any]:
    return {"loc": ["body", field], "msg": msg, "type": kind}


def _exclusive(body: TaskSubmission) -> list[dict[str, Any]]:
    found = []
    if body.plan is not None and (body.pipeline is not None or body.pipeline_ref is not None):
        found.append(
            _problem(
                "plan",
                "give either plan or pipeline (pipeline_ref), not both; a pipeline"
                " is a plan written by hand",
            )
        )
    if body.pipeline is not None and body.pipeline_ref is not None:
        found.append(
            _problem("pipeline_ref", "give either pipeline (inline) or pipeline_ref (registered)")
        )
    running = body.pipeline is not None or body.pipeline_ref is not None
    if body.description is None and not running:
        found.append(
            _problem(
                "description",
                "Field required (it may be omitted only for a pipeline"
                " run: give pipeline or pipeline_ref)",
                "missing",
            )
        )
    if body.inputs and not running:
        found.append(_problem("inputs", "inputs are for pipelines; give pipeline or pipeline_ref"))
    return found


def _middleware(body: TaskSubmission, settings: Settings) -> list[dict[str, Any]]:
    """Unknown middleware (or modes) in `options.middleware`: the worker would refuse them."""
    names = body.options.middleware or []
    problems = middleware_problems(names, modules=settings.middleware_modules)
    return [
        {"loc": ["body", "options", "middleware"], "msg": problem, "type": "value_error"}
        for problem in problems
    ]


async def resolve_ref(backends: Backends, ref: str) -> Pipeline:
    """The registered definition `ref` (`name` or `name@version`) names; 422 naming it if none."""
    name, _, version = ref.partition("@")
    pool = await backends.pool()
    stored = await find(pool, name, version or None)
    if stored is not None:
        return stored.pipeline
    if version:
        known = [str(v["version"]) for v in await versions(pool, name)]
        if known:
            raise invalid(
                [
                    _problem(
                        "pipeline_ref",
                        f"pipeline '{name}' has no version '{version}';"
                        f" versions: {', '.join(known)}",
                    )
                ]
            )
    raise invalid(
        [
            _problem(
                "pipeline_ref",
                f"no pipeline named '{name}' ({await known_names(pool)}); register it with"
                " POST /pipelines (`mahsm pipelines register`)",
            )
        ]
    )


async def task_request(body: TaskSubmission, backends: Backends) -> TaskRequest:
    """The request to start, every problem of a pipeline run answered as one 422 first."""
    found = _exclusive(body) + _middleware(body, backends.settings)
    if found:
        raise invalid(found)
    pipeline = body.pipeline
    if body.pipeline_ref is not None:
        pipeline = await resolve_ref(backends, body.pipeline_ref)
    if pipeline is not None:
        at = ["body", "pipeline"] if body.pipeline is not None else ["body", "pipeline_ref"]
        found = pipeline_problems(pipeline, body.inputs, at=at, inputs_at=["body"])
        if found:
            raise invalid(found)
    fields = body.model_dump(exclude={"pipeline", "pipeline_ref", "plan", "options"})
    fields.update(plan=body.plan, options=body.options, pipeline=pipeline)
    if fields["description"] is None and pipeline is not None:
        fields["description"] = run_description(pipeline)
    try:
        return TaskRequest(**fields)
    except ValidationError as error:  # rules of TaskRequest the body's model does not repeat
        raise ApiError(
            422,
            code="validation_error",
            message="Invalid request: " + "; ".join(e["msg"] for e in error.errors()),
            details=[{"loc": ["body", *e["loc"]], "msg": e["msg"]} for e in error.errors()],
        ) from error
