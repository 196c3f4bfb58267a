"""`/pipelines`: register pipelines by name and version, list and read them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from mahsm.api.auth import CallerDep, authenticate
from mahsm.api.deps import ApiError, DbPoolDep, invalid
from mahsm.api.json_body import Utf8JsonRoute
from mahsm.api.pipeline_checks import pipeline_problems
from mahsm.api.pipeline_registry import (
    StoredPipeline,
    find,
    known_names,
    names,
    register,
    versions,
)
from mahsm.api.pipeline_schemas import (
    PipelinePage,
    PipelineSummary,
    PipelineVersionView,
    PipelineView,
)
from mahsm.api.routes.tasks import error_responses
from mahsm.api.text_guard import reject_unstorable_params
from mahsm.contracts.pipeline import PIPELINE_NAME_PATTERN, Pipeline
from mahsm.pipelines.files import PIPELINE_REF_PATTERN

router = APIRouter(
    prefix="/pipelines",
    tags=["pipelines"],
    route_class=Utf8JsonRoute,
    dependencies=[Depends(authenticate), Depends(reject_unstorable_params)],
    responses=error_responses(401, 422, 503),
)

PipelineRef = Annotated[
    str,
    Path(
        pattern=PIPELINE_REF_PATTERN,
        description="a pipeline's name (its latest version) or name@version",
    ),
]
_VERSION_PATTERN = r"^[A-Za-z0-9_.\-]{1,32}$"


async def _view(pool: DbPoolDep, stored: StoredPipeline) -> PipelineView:
    pipeline = stored.pipeline
    return PipelineView(
        name=pipeline.name,
        version=stored.version,
        description=pipeline.description,
        definition=pipeline,
        created_at=stored.created_at,
        created_by=stored.created_by,
        versions=[PipelineVersionView(**row) for row in await versions(pool, pipeline.name)],
    )


@router.post(
    "",
    status_code=201,
    response_model=PipelineView,
    responses={
        200: {"model": PipelineView, "description": "This exact definition was registered"},
        **error_responses(400, 409, 413),
    },
)
async def register_pipeline(
    pipeline: Pipeline, caller: CallerDep, pool: DbPoolDep, response: Response
) -> PipelineView:
    """Register a pipeline (201); the same definition again answers the stored one (200).

    Its version is the definition's `version`, or the next integer when it has none. A
    definition is checked like a run (steps, placeholders, tools, transforms, providers):
    every problem is in one 422 naming the step and field. A taken `name@version` with a
    different definition is 409: registered versions never change.
    """
    found = pipeline_problems(pipeline, None, at=["body"], inputs_at=["body"])
    if found:
        raise invalid(found)
    stored, created = await register(pool, pipeline, created_by=caller.user)
    response.status_code = 201 if created else 200
    return await _view(pool, stored)


@router.get("", response_model=PipelinePage)
async def list_pipelines(
    pool: DbPoolDep,
    cursor: Annotated[
        str | None,
        Query(pattern=PIPELINE_NAME_PATTERN, description="next_cursor of the previous page"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> PipelinePage:
    """Registered pipelines by name, each with its latest version."""
    rows = await names(pool, after=cursor, limit=limit + 1)
    page = rows[:limit]
    return PipelinePage(
        pipelines=[
            PipelineSummary(
                name=row["name"],
                latest_version=row["version"],
                description=row["description"],
                versions=row["versions"],
                updated_at=row["created_at"],
            )
            for row in page
        ],
        next_cursor=page[-1]["name"] if len(rows) > limit else None,
    )


@router.get("/{ref}", response_model=PipelineView, responses=error_responses(404))
async def get_pipeline(
    ref: PipelineRef,
    pool: DbPoolDep,
    version: Annotated[
        str | None, Query(pattern=_VERSION_PATTERN, description="instead of name@version")
    ] = None,
) -> PipelineView:
    """A pipeline's definition (`name`: its latest version) and the list of its versions."""
    name, _, in_path = ref.partition("@")
    if in_path and version is not None and in_path != version:
        raise invalid([{"loc": ["query", "version"], "msg": f"differs from the path's @{in_path}"}])
    stored = await find(pool, name, in_path or version)
    if stored is None:
        known = await versions(pool, name)
        hint = (
            "versions: " + ", ".join(str(v["version"]) for v in known)
            if known
            else await known_names(pool)
        )
        raise ApiError(
            404,
            code="pipeline_not_found",
            message=f"No pipeline '{ref if in_path else name}'"
            + (f" version '{version}'" if version and not in_path else "")
            + f"; {hint}.",
            details={"name": name, "version": in_path or version},
        )
    return await _view(pool, stored)
