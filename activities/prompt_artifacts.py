"""The `prompt_artifact_get` activity: a prompt artifact for a `signature` step, tools checked.

A step with `artifact: name@version` reads it once, before its first LM call; the tools the
step uses are checked here against the schemas saved with the artifact, using the worker's
own tool catalogue, so a mismatch fails the step before anything runs, listing every problem.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from mahsm.activities.tools.registry import ToolRegistry
from mahsm.prompt.artifact import ArtifactNotFound, PromptValidationError, check_tools
from mahsm.prompt.store import ArtifactStore


class ArtifactRequest(BaseModel):
    """Input of `prompt_artifact_get`."""

    name: str
    version: int | None = None
    tools: list[str] = Field(default_factory=list, description="the step's tools, by name")
    saved_tools: bool = Field(
        default=False,
        description="check every tool the artifact was saved with against this worker's"
        " (an agent's tools are the worker's, not a list of the step's)",
    )


class ArtifactResult(BaseModel):
    """The artifact as stored (content plus name, version, content_hash, created_at)."""

    artifact: dict[str, Any]


class PromptActivities:
    """Reads prompt artifacts for workflows."""

    def __init__(self, *, pool: asyncpg.Pool, tools: ToolRegistry) -> None:
        self._store = ArtifactStore(pool)
        self._tools = tools

    @activity.defn(name="prompt_artifact_get")
    async def get(self, request: ArtifactRequest) -> ArtifactResult:
        """The artifact; non-retryable errors when it is missing or its tools do not match."""
        try:
            artifact = await self._store.get(request.name, request.version)
            names = list(artifact["tools"]) if request.saved_tools else request.tools
            if names:
                specs = []
                for name in names:
                    registered = self._tools.get(name)
                    if registered is not None:
                        specs.append(registered.spec)
                check_tools(f"{request.name}@{artifact['version']}", artifact["tools"], specs)
        except (ArtifactNotFound, PromptValidationError) as error:
            raise ApplicationError(
                str(error), type=type(error).__name__, non_retryable=True
            ) from None
        return ArtifactResult(artifact=artifact)
