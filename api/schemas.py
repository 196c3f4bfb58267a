"""Response bodies of the REST API (requests reuse the public contracts in `mahsm.contracts`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from mahsm.contracts.estimate import PlanEstimate
from mahsm.contracts.pipeline import StepKind
from mahsm.contracts.profile import CapabilityInfo
from mahsm.contracts.task import (
    Capability,
    Plan,
    PlanRevision,
    SubtaskState,
    SubtaskStatus,
    TaskState,
    TaskStatus,
    Usage,
)


class ErrorBody(BaseModel):
    """Every error response: a stable `code`, a human `message`, optional `details`."""

    code: str = Field(examples=["task_not_found"])
    message: str
    details: object | None = None


class TaskLinks(BaseModel):
    """Where to follow a task; `self` and `events` are paths relative to the API's base URL."""

    self: str = Field(examples=["/tasks/task-0b9c..."])
    events: str = Field(examples=["/tasks/task-0b9c.../events"])
    temporal_ui: str


class TaskAccepted(BaseModel):
    """Answer of `POST /tasks`: the task was started; follow it with the links."""

    task_id: str
    status: TaskStatus
    links: TaskLinks


class TaskView(BaseModel):
    """A task without its subtasks' results."""

    id: str
    user_id: str | None
    description: str
    status: TaskStatus
    created_at: datetime
    updated_at: datetime
    plan: Plan | None
    result: str | None
    error: str | None
    usage: Usage
    model: str | None = Field(
        default=None, description="the model the task runs on (the worker's default if unset)"
    )
    waiting_for: str | None = Field(
        default=None, description="a planning or aggregation call being retried, and why"
    )
    pipeline: str | None = Field(default=None, description="name[@version] of the pipeline run")
    outputs: dict[str, Any] | None = Field(
        default=None, description="a pipeline run's declared outputs, rendered"
    )
    revisions: list[PlanRevision] = Field(
        default_factory=list, description="revisions of the plan after failures (replanning)"
    )
    estimate: PlanEstimate | None = Field(
        default=None,
        description="the plan's estimate (approval, options.estimate); with `actual` once ended",
    )


class SubtaskView(BaseModel):
    """One subtask of the plan with what became of it."""

    id: str
    description: str
    required_capabilities: list[Capability]
    depends_on: list[str]
    status: SubtaskStatus
    output: str | None
    error: str | None
    agent: str | None
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    usage: Usage
    waiting_for: str | None
    kind: StepKind = Field(default=StepKind.AGENT, description="what the step does")
    value: Any = Field(
        default=None, description="a pipeline step's output as JSON; `output` holds it as text"
    )
    model: str | None = Field(default=None, description="the model that served its last call")
    detections: dict[str, int] = Field(
        default_factory=dict, description="middleware detections, '<middleware>.<kind>' -> count"
    )
    llm_calls: int | None = Field(default=None, description="LLM calls its agent made")


class ExternalLinks(BaseModel):
    """Where to look at a task beyond MAHSM: its trace and its subtasks' child workflows."""

    trace_id: str | None = Field(default=None, description="OpenTelemetry trace id (tracing on)")
    trace_url: str | None = Field(
        default=None, description="the trace in Langfuse (when LANGFUSE_HOST is set on the API)"
    )
    subtask_workflows: dict[str, str] = Field(
        default_factory=dict,
        description="subtask id -> id of the child workflow its agent ran in",
    )


class TaskDetail(BaseModel):
    """Answer of `GET /tasks/{task_id}`, and of the `snapshot` and `task_ended` events."""

    task: TaskView
    subtask_results: list[SubtaskView]
    links: ExternalLinks | None = Field(
        default=None, description="`GET /tasks/{task_id}` only: trace and child workflow links"
    )


class TaskPage(BaseModel):
    """One page of `GET /tasks`, newest first; pass `next_cursor` as `cursor` for the next."""

    tasks: list[TaskView]
    next_cursor: str | None


class TaskStatusChange(BaseModel):
    """Answer of cancel and approve: the task and the status it has now."""

    task_id: str
    status: TaskStatus


class WorkerView(BaseModel):
    """A worker polling a task queue, as Temporal last saw it."""

    identity: str
    last_seen: datetime | None


class ProfileView(BaseModel):
    """The agent profile serving a pool (docs/profiles.md)."""

    name: str
    capabilities: list[Capability]
    description: str = Field(description="what the planner is told")
    tools: list[str] = Field(description="the tools its agents are offered")
    model: str | None = Field(description="its agents' model; None: the task's")
    max_iterations: int | None = None
    artifact: str | None = Field(default=None, description="its prompt artifact, if any")


class PoolView(BaseModel):
    """A capability pool: its task queue, its capabilities, live workers and profile."""

    task_queue: str
    capabilities: list[Capability]
    workers: list[WorkerView]
    profile: ProfileView | None = Field(
        default=None, description="the agent profile serving it; None: the default agent"
    )


class AgentsView(BaseModel):
    """Answer of `GET /agents`."""

    task_queue: str = Field(description="queue of the task orchestrators (TaskWorkflow)")
    orchestrators: list[WorkerView]
    pools: list[PoolView]
    unserved_capabilities: list[Capability] = Field(
        description="built-in capabilities no live pool serves; subtasks needing them wait"
    )
    capabilities: list[CapabilityInfo] = Field(
        default_factory=list,
        description="capabilities of live published pools, as the planner is told them",
    )


def subtask_view(item: SubtaskState) -> SubtaskView:
    """The API shape of a subtask from the workflow's state."""
    subtask, result = item.subtask, item.result
    return SubtaskView(
        id=subtask.id,
        description=subtask.description,
        required_capabilities=subtask.required_capabilities,
        depends_on=subtask.depends_on,
        status=result.status,
        output=result.output,
        error=result.error,
        agent=result.agent,
        started_at=result.started_at,
        finished_at=result.finished_at,
        attempts=result.attempts,
        usage=result.usage,
        waiting_for=result.waiting_for,
        kind=subtask.kind,
        value=result.value,
        model=result.model,
        detections=result.detections,
        llm_calls=result.llm_calls,
    )


def task_view(state: TaskState) -> TaskView:
    """The API shape of a task from the workflow's state."""
    return TaskView(
        id=state.task_id,
        user_id=state.user_id,
        description=state.description,
        status=state.status,
        created_at=state.created_at,
        updated_at=state.updated_at,
        plan=state.plan,
        result=state.result,
        error=state.error,
        usage=state.usage,
        model=state.model or None,
        waiting_for=state.waiting_for,
        pipeline=state.pipeline,
        outputs=state.outputs,
        revisions=state.revisions,
        estimate=state.estimate,
    )
