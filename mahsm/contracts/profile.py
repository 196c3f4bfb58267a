"""Agent profiles: who serves a capability pool, and what the planner is told about it.

A profile travels in `PoolChoice` (the pool lookup's answer, recorded in the task's history),
so the agent loop that runs on its pool uses the same instructions, model and iteration
limit on every replay. Only optional fields may be added.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mahsm.contracts.common import ARTIFACT_REF_PATTERN, MODEL_ID_PATTERN, Capability, Text

PROFILE_NAME_PATTERN = r"^[a-z][a-z0-9_\-]{0,63}$"
TOOL_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class AgentProfile(BaseModel):
    """An agent profile, as written in a YAML file or returned by an entry point."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(pattern=PROFILE_NAME_PATTERN, description="e.g. `legal-reviewer`")
    capabilities: list[Capability] = Field(
        min_length=1, description="the pool it serves: any identifiers, e.g. [legal_review]"
    )
    description: Text = Field(
        min_length=1, max_length=2000, description="what the planner is told it can do"
    )
    instructions: Text | None = Field(
        default=None, max_length=100_000, description="system instructions of its agents"
    )
    artifact: str | None = Field(
        default=None,
        pattern=ARTIFACT_REF_PATTERN,
        description="a prompt artifact (`name@version`) giving the instructions instead",
    )
    tools: list[str] | None = Field(
        default=None,
        description="tool names from the worker's registry; unset: the tools of its capabilities",
    )
    model: str | None = Field(
        default=None, pattern=MODEL_ID_PATTERN, description="e.g. openai/gpt-4o-mini"
    )
    max_iterations: int | None = Field(default=None, ge=1, le=100)

    @model_validator(mode="after")
    def _one_source_of_instructions(self) -> AgentProfile:
        if self.instructions is not None and self.artifact is not None:
            raise ValueError(
                "give either `instructions` or `artifact` (a prompt artifact), not both"
            )
        for tool in self.tools or []:
            if re.fullmatch(TOOL_NAME_PATTERN, tool) is None:
                raise ValueError(f"tools: '{tool}' is not a tool name ({TOOL_NAME_PATTERN})")
        return self


class PoolProfile(BaseModel):
    """The profile serving a pool, as the pool lookup hands it to the workflow.

    `instructions` is resolved: a profile's prompt artifact is read when its worker starts.
    """

    name: str
    capabilities: list[Capability]
    description: str
    instructions: str | None = None
    artifact: str | None = None
    tools: list[str] | None = None
    model: str | None = None
    max_iterations: int | None = None


class CapabilityInfo(BaseModel):
    """A capability some live pool serves, and what the planner is told about it."""

    name: Capability
    description: str
    profiles: list[str] = Field(default_factory=list, description="profiles serving it")
