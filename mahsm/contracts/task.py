"""Public contracts of a task: the request, its plan, and the results.

These models are the payloads of `TaskWorkflow` and of the REST API. Only optional fields
may be added: running workflow histories hold serialized copies of them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from mahsm.contracts.common import ARTIFACT_REF_PATTERN, INPUT, Text
from mahsm.contracts.common import MODEL_ID_PATTERN as MODEL_ID_PATTERN
from mahsm.contracts.common import Capability as Capability
from mahsm.contracts.pipeline import LeafStep, ModelChoice, Pipeline, StepKind

MAX_PARALLEL = 64
"""The most subtasks of one task that run at once."""
MIN_TIMEOUT_S = 1.0
"""The shortest timeout or wait a task may ask for: Temporal rounds shorter ones to "none"."""

STATE_QUERY = "state"
"""Name of `TaskWorkflow`'s query answering the whole `TaskState`."""
APPROVE_UPDATE = "approve"
"""Name of `TaskWorkflow`'s update taking an `ApprovalDecision`, answering `ApprovalOutcome`."""

_INPUT = INPUT
MIDDLEWARE_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}(:[a-z0-9_]{1,32})?$"
"""A middleware name, optionally with its mode: `pii`, `pii:block`, `injection_guard:flag`."""


class TaskStatus(StrEnum):
    """Life cycle of a task."""

    PENDING = "pending"
    PLANNING = "planning"
    AWAITING_APPROVAL = "awaiting_approval"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def is_terminal(self) -> bool:
        """True once the task can no longer change."""
        return self in _TERMINAL_TASK


_TERMINAL_TASK = {
    TaskStatus.COMPLETED,
    TaskStatus.FAILED,
    TaskStatus.CANCELLED,
    TaskStatus.TIMED_OUT,
}


class SubtaskStatus(StrEnum):
    """Life cycle of a subtask."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True once the subtask can no longer change."""
        return self not in (SubtaskStatus.PENDING, SubtaskStatus.RUNNING)


class Usage(BaseModel):
    """Tokens and cost of one or more LLM calls."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    calls: int = Field(default=0, description="LLM calls served (0 in records made before)")

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cost_usd=round(self.cost_usd + other.cost_usd, 10),
            calls=self.calls + other.calls,
        )

    def __sub__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens - other.input_tokens,
            output_tokens=self.output_tokens - other.output_tokens,
            cost_usd=round(self.cost_usd - other.cost_usd, 10),
            calls=self.calls - other.calls,
        )


class Budget(BaseModel):
    """Spending limits of one task; either or both may be set."""

    model_config = _INPUT

    max_total_tokens: int | None = Field(default=None, gt=0)
    max_cost_usd: float | None = Field(default=None, gt=0)

    def exceeded_by(self, usage: Usage) -> str | None:
        """A sentence saying which limit `usage` has reached, or None."""
        if self.max_total_tokens is not None and usage.total_tokens >= self.max_total_tokens:
            return (
                f"token budget spent: {usage.total_tokens} of {self.max_total_tokens} tokens used"
            )
        if self.max_cost_usd is not None and usage.cost_usd >= self.max_cost_usd:
            return f"cost budget spent: ${usage.cost_usd:.4f} of ${self.max_cost_usd:.4f} used"
        return None


MAX_REPLANS = 5
"""The most plan revisions one task may ask for (`ReplanOptions.max_replans`)."""


class ReplanOptions(BaseModel):
    """Replanning on failure: the planner revises the rest of the plan (docs/replanning.md)."""

    model_config = _INPUT

    max_replans: int = Field(
        default=1,
        ge=0,
        le=MAX_REPLANS,
        description="how many times the planner may revise the remaining plan after a subtask"
        " failed for good or was blocked; 0: never (as without `replan`)",
    )


class PlanRevision(BaseModel):
    """One revision of a task's plan after a failure, as `TaskState.revisions` lists it."""

    number: int = Field(description="1 for the first revision")
    reason: str = Field(description="the failure that led to it (redacted like any error)")
    failed: list[str] = Field(
        default_factory=list, description="ids of the subtasks that failed or were blocked"
    )
    at: datetime
    summary: str = Field(default="", description="what changed: kept, dropped, added subtasks")
    added: list[str] = Field(default_factory=list, description="ids of the new subtasks")


class TaskOptions(BaseModel):
    """How a task runs. Unset timeouts take the worker's configured defaults.

    Timeouts and waits are seconds, at least `MIN_TIMEOUT_S` (1 s).
    """

    model_config = _INPUT

    model: ModelChoice | None = Field(
        default=None,
        description="'provider/model', e.g. 'openai/gpt-4o-mini'; a list is a fallback chain",
    )
    max_parallel: int | None = Field(
        default=None,
        ge=1,
        le=MAX_PARALLEL,
        description="subtasks running at once; unset: every ready subtask (up to 64)",
    )
    task_timeout_s: float | None = Field(default=None, ge=MIN_TIMEOUT_S, le=7 * 24 * 3600)
    subtask_timeout_s: float | None = Field(default=None, ge=MIN_TIMEOUT_S, le=24 * 3600)
    max_iterations: int = Field(default=8, ge=1, le=100)
    require_approval: bool = False
    approval_timeout_s: float = Field(default=24 * 3600, ge=MIN_TIMEOUT_S, le=30 * 24 * 3600)
    budget: Budget | None = None
    capability_wait_s: float | None = Field(
        default=None,
        ge=MIN_TIMEOUT_S,
        le=7 * 24 * 3600,
        description="how long a subtask waits for a worker serving it",
    )
    middleware: list[Annotated[str, Field(pattern=MIDDLEWARE_NAME_PATTERN)]] | None = Field(
        default=None,
        max_length=16,
        description="middleware run around every LLM call, in order; unset: the worker's"
        " default (MAHSM_MIDDLEWARE); [] runs none",
    )
    artifact: str | None = Field(
        default=None,
        pattern=ARTIFACT_REF_PATTERN,
        description="a prompt artifact 'name@version' (or 'name': its latest) whose"
        " instructions and demos every agent without one of its own is given",
    )
    side_effects: bool = Field(
        default=True,
        description="false: tools that change the world (file writes, shared state) are"
        " neither offered nor run (a shadow experiment run's default)",
    )
    replan: ReplanOptions | None = Field(
        default=None,
        description="revise the remaining plan when a subtask fails for good; unset: off",
    )
    estimate: bool = Field(
        default=False,
        description="estimate the plan's calls, tokens, cost and duration before it runs (always"
        " done when require_approval is set); the final state shows it next to the actuals",
    )


MAX_SUBTASKS = 50


class Subtask(BaseModel):
    """One node of a plan."""

    model_config = _INPUT

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: Text = Field(min_length=1, max_length=5000)
    # At least one for agents (the planner's schema says so); other kinds run where their
    # work is: on the task's queue, or a tool's pool.
    required_capabilities: list[Capability] = Field(json_schema_extra={"minItems": 1})
    depends_on: list[str] = Field(default_factory=list)
    priority: int = Field(default=5, ge=0, le=10)
    estimated_duration: float | None = Field(default=None, ge=0, description="seconds")
    # Pipeline nodes only (hidden from the planner's schema): what the node does.
    kind: SkipJsonSchema[StepKind] = StepKind.AGENT
    step: SkipJsonSchema[LeafStep | None] = Field(
        default=None, description="the pipeline step this node runs (kind llm, tool, ...)"
    )

    @model_validator(mode="after")
    def _agents_need_capabilities(self) -> Subtask:
        if self.kind == StepKind.AGENT and not self.required_capabilities:
            raise ValueError("required_capabilities: an agent subtask needs at least one")
        return self

    @property
    def is_critical(self) -> bool:
        """False for a pipeline step whose failure does not stop the run."""
        return self.step.is_critical if self.step is not None else True


class Plan(BaseModel):
    """A DAG of subtasks. Structural checks (ids, dependencies, cycles) are in `validate_plan`."""

    model_config = _INPUT

    subtasks: list[Subtask] = Field(min_length=1, max_length=MAX_SUBTASKS)
    rationale: Text | None = Field(default=None, max_length=5000)


class TaskRequest(BaseModel):
    """What a user submits: `TaskWorkflow`'s input."""

    model_config = _INPUT

    description: Text = Field(min_length=10, max_length=5000)
    user_id: Text | None = Field(default=None, max_length=200)
    plan: Plan | None = None
    options: TaskOptions = Field(default_factory=TaskOptions)
    pipeline: Pipeline | None = Field(
        default=None, description="run this pipeline instead of planning (see docs/pipelines.md)"
    )
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="the pipeline's inputs, by name"
    )
    # Which engine runs the task. Every request made now carries it (defaults are serialized),
    # so the workflow tells new tasks from histories recorded before it without a patch
    # marker; those recorded before it carry none (see `TaskWorkflow.run`).
    engine: SkipJsonSchema[Literal[2]] = 2

    @field_validator("description")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if len(value.strip()) < 10:
            raise ValueError("description must hold at least 10 non-blank characters")
        return value

    @model_validator(mode="after")
    def _plan_is_valid(self) -> TaskRequest:
        if self.plan is not None:
            from mahsm.plan_validation import validate_plan

            errors = validate_plan(self.plan)
            if errors:
                raise ValueError("invalid plan: " + "; ".join(errors))
        if self.pipeline is not None and self.plan is not None:
            raise ValueError("give either plan or pipeline, not both")
        if self.inputs and self.pipeline is None:
            raise ValueError("inputs are for pipelines; give a pipeline (or pipeline_ref)")
        return self


class BlobRef(BaseModel):
    """Claim check: a large value stored in the blob table instead of the payload."""

    blob_id: str
    size_bytes: int
    sha256: str


class SubtaskResult(BaseModel):
    """What became of one subtask."""

    status: SubtaskStatus = SubtaskStatus.PENDING
    output: str | None = None
    output_ref: BlobRef | None = None
    error: str | None = None
    agent: str | None = Field(default=None, description="identity of the worker that ran it")
    pool: str | None = Field(default=None, description="task queue of its capability pool")
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0
    usage: Usage = Field(default_factory=Usage)
    waiting_for: str | None = Field(default=None, description="why it has not started yet")
    value: Any = Field(
        default=None,
        description="a pipeline step's output as JSON (a structured answer, a transform's"
        " value, a group's outputs); `output` holds it as text",
    )
    model: str | None = Field(default=None, description="the model that served its last call")
    detections: dict[str, int] = Field(
        default_factory=dict, description="middleware detections, '<middleware>.<kind>' -> count"
    )
    llm_calls: int | None = Field(
        default=None, description="LLM calls its agent made (set when it completes)"
    )


class SubtaskState(BaseModel):
    """A subtask with its current result, as the `state` query returns it."""

    subtask: Subtask
    result: SubtaskResult = Field(default_factory=SubtaskResult)


class TaskState(BaseModel):
    """The whole state of a task at one moment: the `state` query's answer."""

    task_id: str
    description: str
    user_id: str | None = None
    status: TaskStatus = TaskStatus.PENDING
    created_at: datetime
    updated_at: datetime
    options: TaskOptions = Field(default_factory=TaskOptions)
    model: str = ""
    plan: Plan | None = None
    subtasks: list[SubtaskState] = Field(default_factory=list)
    result: str | None = None
    result_ref: BlobRef | None = None
    error: str | None = None
    usage: Usage = Field(default_factory=Usage)
    approval_comment: str | None = None
    version: int = 0
    waiting_for: str | None = Field(
        default=None, description="a call of the task itself (planning, aggregation) being retried"
    )
    pipeline: str | None = Field(default=None, description="name[@version] of the pipeline run")
    outputs: dict[str, Any] | None = Field(
        default=None, description="a pipeline run's declared outputs, rendered"
    )
    revisions: list[PlanRevision] = Field(
        default_factory=list, description="revisions of the plan after failures, oldest first"
    )
    estimate: PlanEstimate | None = Field(
        default=None,
        description="the plan's estimate (with approval or options.estimate); once the task"
        " ended, with the actuals beside it",
    )

    def subtask(self, subtask_id: str) -> SubtaskState:
        """The state of one subtask by id."""
        for item in self.subtasks:
            if item.subtask.id == subtask_id:
                return item
        raise KeyError(subtask_id)


class ApprovalDecision(BaseModel):
    """Input of the `approve` update."""

    model_config = _INPUT

    approved: bool
    comment: Text = Field(default="", max_length=2000)


class ApprovalOutcome(BaseModel):
    """Result of the `approve` update."""

    status: TaskStatus


# Estimates refer to plans and usage above; imported last to break the cycle.
from mahsm.contracts.estimate import PlanEstimate  # noqa: E402

TaskState.model_rebuild()
