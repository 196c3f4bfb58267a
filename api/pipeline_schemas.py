"""Bodies of pipeline runs (`POST /tasks`) and of the pipeline registry (`/pipelines`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from mahsm.contracts.common import INPUT, Text
from mahsm.contracts.pipeline import Pipeline
from mahsm.contracts.task import Plan, TaskOptions
from mahsm.pipelines.files import PIPELINE_REF_PATTERN


class TaskSubmission(BaseModel):
    """Body of `POST /tasks`: a task in plain language, or a run of a pipeline.

    A pipeline run gives `pipeline` (the definition) or `pipeline_ref` (a registered one),
    plus its `inputs`; its `description` may then be omitted. `plan` and `pipeline` exclude
    each other.
    """

    model_config = INPUT

    description: Text | None = Field(
        default=None,
        min_length=10,
        max_length=5000,
        description="what to do; required unless pipeline or pipeline_ref is given",
    )
    user_id: Text | None = Field(default=None, max_length=200)
    plan: Plan | None = None
    options: TaskOptions = Field(default_factory=TaskOptions)
    pipeline: Pipeline | None = Field(
        default=None, description="run this pipeline instead of planning (docs/pipelines.md)"
    )
    pipeline_ref: str | None = Field(
        default=None,
        pattern=PIPELINE_REF_PATTERN,
        description="run a registered pipeline: 'name' (its latest version) or 'name@version'",
    )
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="the pipeline's inputs, by name"
    )
    # Sent by clients that serialize a whole `TaskRequest` (its only value; not documented).
    engine: SkipJsonSchema[Literal[2]] = 2

    @field_validator("description")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and len(value.strip()) < 10:
            raise ValueError("description must hold at least 10 non-blank characters")
        return value

    @field_validator("plan")
    @classmethod
    def _plan_is_valid(cls, value: Plan | None) -> Plan | None:
        if value is not None:
            from mahsm.plan_validation import validate_plan

            errors = validate_plan(value)
            if errors:
                raise ValueError("invalid plan: " + "; ".join(errors))
        return value


class PipelineVersionView(BaseModel):
    """One registered version of a pipeline."""

    version: str
    created_at: datetime
    created_by: str | None = Field(description="the API key's user who registered it")


class PipelineView(BaseModel):
    """A registered pipeline: one version's definition, and every version of its name."""

    name: str
    version: str
    description: str | None
    definition: Pipeline
    created_at: datetime
    created_by: str | None
    versions: list[PipelineVersionView] = Field(description="newest first")


class PipelineSummary(BaseModel):
    """A pipeline name with its latest version, as `GET /pipelines` lists it."""

    name: str
    latest_version: str
    description: str | None
    versions: int = Field(description="how many versions are registered")
    updated_at: datetime = Field(description="when the latest version was registered")


class PipelinePage(BaseModel):
    """One page of `GET /pipelines`, by name; pass `next_cursor` as `cursor` for the next."""

    pipelines: list[PipelineSummary]
    next_cursor: str | None
