"""A pipeline (and its inputs) checked at the edge: one 422 naming each step and field.

The checks are `mahsm.pipelines.validate_pipeline` and `validate_inputs`, against what this
process offers: the default tool registry, transforms importable here, and the providers a
`ProviderRegistry` knows. Pydantic's own errors inside a pipeline name steps by position
(`steps.0.llm.prompt`); the app's validation handler rewrites them to name the steps
(`mahsm.pipelines.files.named_errors`: `steps.draft.prompt`), so both kinds read alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from mahsm.activities.llm.registry import ProviderRegistry
from mahsm.activities.tools.registry import default_registry
from mahsm.contracts.pipeline import Pipeline
from mahsm.pipelines import Catalogue, PipelineProblem, validate_inputs, validate_pipeline
from mahsm.pipelines.transforms import transform_problem
from mahsm.settings import Settings

Loc = Sequence[str | int]


@cache
def _provider_names() -> frozenset[str]:
    # Building a registry only lists names (providers are built lazily, on first use), so the
    # API needs no provider keys; entry points are read once per process.
    return frozenset(ProviderRegistry(Settings.model_construct()).names)


def api_catalogue() -> Catalogue:
    """What a pipeline may name in this process: tools, transforms, providers."""
    tools = default_registry()
    return Catalogue(
        tools=lambda name: name in tools,
        transforms=transform_problem,
        providers=_provider_names(),
    )


def pipeline_problems(
    pipeline: Pipeline, inputs: dict[str, Any] | None, *, at: Loc, inputs_at: Loc
) -> list[dict[str, Any]]:
    """The problems of `pipeline` (and of `inputs` unless None) as error `details` entries.

    Args:
        pipeline: The definition.
        inputs: The run's inputs; None checks the definition only (registration).
        at: Where the pipeline is in the request, e.g. ["body", "pipeline"].
        inputs_at: Where the inputs are, e.g. ["body"] (the field is `inputs.<name>`).
    """
    found = [_detail(at, problem) for problem in validate_pipeline(pipeline, api_catalogue())]
    if inputs is not None:
        found += [_detail(inputs_at, problem) for problem in validate_inputs(pipeline, inputs)]
    return found


def _detail(at: Loc, problem: PipelineProblem) -> dict[str, Any]:
    return {"loc": [*at, *problem.field.split(".")], "msg": problem.message, "type": "pipeline"}
