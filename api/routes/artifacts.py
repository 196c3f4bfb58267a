"""`/artifacts`: prompt artifacts (`mahsm.prompt`): list, read a version, upload an export."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from mahsm.api.auth import authenticate
from mahsm.api.deps import ApiError, DbPoolDep
from mahsm.api.json_body import Utf8JsonRoute
from mahsm.api.routes.tasks import error_responses
from mahsm.api.text_guard import reject_unstorable_params
from mahsm.prompt.artifact import FORMAT, ArtifactNotFound, content_hash
from mahsm.prompt.store import ArtifactRef, ArtifactStore, ArtifactSummary

ARTIFACT_NAME_PATTERN = r"^[a-z0-9][a-z0-9_\-.]{0,63}$"

router = APIRouter(
    tags=["artifacts"],
    route_class=Utf8JsonRoute,
    dependencies=[Depends(authenticate), Depends(reject_unstorable_params)],
)

Name = Annotated[str, Path(pattern=ARTIFACT_NAME_PATTERN, description="artifact name")]
Version = Annotated[int, Path(ge=1, le=1_000_000_000)]


class ArtifactUpload(BaseModel):
    """An exported artifact (`mahsm artifacts export`): stored as the next version of `name`."""

    name: str = Field(pattern=ARTIFACT_NAME_PATTERN)
    format: Literal["mahsm.prompt/1"] = FORMAT  # type: ignore[assignment]
    program: dict[str, Any] = Field(description="rebuild spec and DSPy state")
    tools: dict[str, Any] = Field(default_factory=dict, description="OpenAI tool schemas")
    model: str | None = Field(default=None, max_length=200)
    dependencies: dict[str, Any] = Field(default_factory=dict)
    content_hash: str | None = Field(
        default=None, description="when given, must match the content (an unedited export)"
    )


@router.get("/artifacts", responses=error_responses(401, 503))
async def list_artifacts(pool: DbPoolDep) -> list[ArtifactSummary]:
    """Every artifact name with its latest version."""
    return await ArtifactStore(pool).list()


@router.post("/artifacts", status_code=201, responses=error_responses(400, 401, 413, 422, 503))
async def upload_artifact(body: ArtifactUpload, pool: DbPoolDep) -> ArtifactRef:
    """Store an exported artifact; the same content as a stored version answers that version."""
    content = body.model_dump(include={"format", "program", "tools", "model", "dependencies"})
    if "state" not in body.program:
        raise ApiError(422, code="invalid_artifact", message="program.state is missing")
    if body.content_hash is not None and body.content_hash != content_hash(content):
        raise ApiError(
            422,
            code="invalid_artifact",
            message="content_hash does not match the content; upload an unedited export",
        )
    return await ArtifactStore(pool).save(body.name, content)


@router.get("/artifacts/{name}", responses=error_responses(401, 404, 422, 503))
async def latest_artifact(name: Name, pool: DbPoolDep) -> dict[str, Any]:
    """The latest version of an artifact."""
    return await _get(pool, name, None)


@router.get("/artifacts/{name}/{version}", responses=error_responses(401, 404, 422, 503))
async def artifact_version(name: Name, version: Version, pool: DbPoolDep) -> dict[str, Any]:
    """One version of an artifact: program state, tool schemas, model, hash, time."""
    return await _get(pool, name, version)


async def _get(pool: Any, name: str, version: int | None) -> dict[str, Any]:
    try:
        return await ArtifactStore(pool).get(name, version)
    except ArtifactNotFound as error:
        raise ApiError(404, code="artifact_not_found", message=str(error)) from None
