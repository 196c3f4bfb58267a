"""What `MahsmClient` returns besides `TaskState`: pages of tasks, agent pools, pipelines."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mahsm.contracts.pipeline import Pipeline
from mahsm.contracts.task import (
    Plan,
    Subtask,
    SubtaskResult,
    SubtaskState,
    TaskOptions,
    TaskState,
    TaskStatus,
    Usage,
)


class TaskFilter(BaseModel):
    """Which tasks `MahsmClient.list` returns; unset fields do not filter."""

    status: TaskStatus | None = None
    user_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


class TaskPage(BaseModel):
    """One page of `MahsmClient.list`; pass `next_cursor` back for the next page."""

    tasks: list[TaskState]
    next_cursor: str | None = None


class Worker(BaseModel):
    """A worker process polling a task queue, as Temporal last saw it."""

    model_config = ConfigDict(extra="allow")

    identity: str
    last_seen: datetime | None = None


class AgentPool(BaseModel):
    """A capability pool (one task queue) and its live workers."""

    model_config = ConfigDict(extra="allow")

    task_queue: str
    capabilities: list[str] = Field(default_factory=list)
    workers: list[Worker] = Field(default_factory=list)
    profile: dict[str, Any] | None = Field(
        default=None, description="the agent profile serving the pool (docs/profiles.md)"
    )


class AgentPools(BaseModel):
    """`GET /agents`: orchestrators, pools with live workers, capabilities nobody serves."""

    model_config = ConfigDict(extra="allow")

    task_queue: str = Field(default="", description="queue of the task orchestrators")
    orchestrators: list[Worker] = Field(default_factory=list)
    pools: list[AgentPool] = Field(default_factory=list)
    unserved_capabilities: list[str] = Field(default_factory=list)


def task_state_from_api(task: dict[str, Any], subtasks: list[dict[str, Any]]) -> TaskState:
    """Map the REST shape (`{"task": ..., "subtask_results": [...]}`) to a `TaskState`.

    Fields the REST shape lacks (`options`, `model`, `version`) keep their defaults unless the
    API sends them.
    """
    plan = Plan.model_validate(task["plan"]) if task.get("plan") else None
    planned = {s.id: s for s in plan.subtasks} if plan else {}
    states = []
    for item in subtasks:
        definition = planned.get(item["id"]) or Subtask(
            id=item["id"],
            description=item.get("description") or item["id"],
            required_capabilities=item.get("required_capabilities") or ["data_analysis"],
            depends_on=item.get("depends_on") or [],
            kind=item.get("kind") or "agent",
        )
        result = SubtaskResult.model_validate(
            {k: v for k, v in item.items() if k in SubtaskResult.model_fields and v is not None}
        )
        states.append(SubtaskState(subtask=definition, result=result))
    extra = {
        k: task[k]
        for k in ("options", "model", "version", "pipeline", "outputs", "revisions")
        if task.get(k) is not None
    }
    return TaskState(
        task_id=task["id"],
        description=task["description"],
        user_id=task.get("user_id"),
        status=task["status"],
        created_at=task["created_at"],
        updated_at=task["updated_at"],
        plan=plan,
        subtasks=states,
        result=task.get("result"),
        error=task.get("error"),
        usage=Usage.model_validate(task.get("usage") or {}),
        **extra,
    )


class PipelineRun(BaseModel):
    """A run of a pipeline as the client submits it: a definition or a registered name."""

    pipeline: Pipeline | None = None
    pipeline_ref: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    options: TaskOptions = Field(default_factory=TaskOptions)
    user_id: str | None = None
    description: str | None = None


class PipelineVersion(BaseModel):
    """One registered version of a pipeline."""

    model_config = ConfigDict(extra="allow")

    version: str
    created_at: datetime
    created_by: str | None = None


class RegisteredPipeline(BaseModel):
    """`GET /pipelines/{name}`: one version's definition and every version of the name."""

    model_config = ConfigDict(extra="allow")

    name: str
    version: str
    description: str | None = None
    definition: Pipeline
    created_at: datetime
    created_by: str | None = None
    versions: list[PipelineVersion] = Field(default_factory=list)


class PipelineSummary(BaseModel):
    """A registered pipeline name with its latest version."""

    model_config = ConfigDict(extra="allow")

    name: str
    latest_version: str
    description: str | None = None
    versions: int = 1
    updated_at: datetime


class PipelinePage(BaseModel):
    """One page of `GET /pipelines`; pass `next_cursor` back for the next page."""

    pipelines: list[PipelineSummary]
    next_cursor: str | None = None
