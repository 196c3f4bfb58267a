"""Contracts of plan estimates: what a plan is expected to cost and take before it runs.

Payloads of the `estimate_plan` activity and `PlanEstimateWorkflow`, of `POST
/tasks/estimate`, and `TaskState.estimate`. Only optional fields may be added.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from mahsm.contracts.common import INPUT, Text
from mahsm.contracts.task import Plan, TaskOptions, TaskRequest, Usage


class Range(BaseModel):
    """A figure with its range: `low` <= `expected` <= `high`."""

    low: float = 0.0
    expected: float = 0.0
    high: float = 0.0

    def __add__(self, other: Range) -> Range:
        return Range(
            low=self.low + other.low,
            expected=self.expected + other.expected,
            high=self.high + other.high,
        )


class Basis(StrEnum):
    """Where a step's figures come from."""

    HISTORY = "history"
    """Finished subtasks of the same capabilities on the same model."""
    HISTORY_CAPABILITIES = "history_capabilities"
    """Finished subtasks of the same capabilities on other models (tokens and time only)."""
    HISTORY_MODEL = "history_model"
    """Finished subtasks of other capabilities on the same model."""
    DEFAULT = "default"
    """No history: the documented defaults (docs/estimates.md)."""


class Figures(BaseModel):
    """Expected LLM calls, tokens, cost and duration of one step or of a whole plan."""

    llm_calls: Range = Field(default_factory=Range)
    input_tokens: Range = Field(default_factory=Range)
    output_tokens: Range = Field(default_factory=Range)
    cost_usd: Range = Field(default_factory=Range)
    duration_s: Range = Field(default_factory=Range)

    def __add__(self, other: Figures) -> Figures:
        """Calls, tokens, cost and duration added (duration as if one ran after the other)."""
        return Figures(
            llm_calls=self.llm_calls + other.llm_calls,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
            duration_s=self.duration_s + other.duration_s,
        )


class StepEstimate(BaseModel):
    """The estimate of one subtask, or of the task's own calls (planning, aggregation)."""

    id: str = Field(description="the subtask id; `_task` for the task's own calls")
    capabilities: list[str] = Field(default_factory=list)
    model: str
    figures: Figures
    basis: Basis
    samples: int = Field(default=0, description="finished subtasks the figures were learned from")


class EstimateActual(BaseModel):
    """What the task spent once it ended, next to its estimate (for the same steps)."""

    llm_calls: int | None = Field(default=None, description="None when a step did not say")
    input_tokens: int
    output_tokens: int
    cost_usd: float
    duration_s: float
    cost_error: float | None = Field(
        default=None, description="actual / expected - 1 (0.1: the actual was 10% higher)"
    )
    tokens_error: float | None = None
    duration_error: float | None = None


class PlanEstimate(BaseModel):
    """A plan's expected calls, tokens, cost and duration, per step and in total."""

    model: str
    subtasks: list[StepEstimate]
    task_calls: StepEstimate | None = Field(
        default=None, description="the task's own calls: planning (when it plans), aggregation"
    )
    total: Figures = Field(
        description="calls, tokens and cost summed; duration along the critical path"
    )
    critical_path: list[str] = Field(
        default_factory=list, description="the subtasks whose expected durations set the total"
    )
    notes: list[str] = Field(default_factory=list)
    spent_before: Usage = Field(
        default_factory=Usage,
        description="what the task had spent when estimated (planning), not in the estimate",
    )
    actual: EstimateActual | None = Field(
        default=None, description="set when the task ends: what the estimated steps spent"
    )


class EstimateInput(BaseModel):
    """Input of the `estimate_plan` activity."""

    plan: Plan
    model: str
    max_iterations: int = 8
    max_parallel: int | None = None
    plans: bool = Field(default=False, description="the task will plan (one planning call)")
    spent_before: Usage = Field(default_factory=Usage)


class EstimateWorkflowInput(BaseModel):
    """Input of `PlanEstimateWorkflow`."""

    request: TaskRequest


class EstimateReport(BaseModel):
    """Answer of `POST /tasks/estimate` and result of `PlanEstimateWorkflow`."""

    plan: Plan
    planned: bool = Field(description="true when the planner produced the plan for the estimate")
    planning_usage: Usage | None = Field(
        default=None, description="what the estimate's own planning call cost (not in estimate)"
    )
    estimate: PlanEstimate
    computed_at: datetime | None = None


class EstimateRequest(BaseModel):
    """Body of `POST /tasks/estimate`: a task as `POST /tasks` takes it, with or without a plan."""

    model_config = INPUT

    description: Text = Field(min_length=10, max_length=5000)
    plan: Plan | None = Field(
        default=None, description="estimate this plan; without one, the planner makes one"
    )
    options: TaskOptions = Field(default_factory=TaskOptions)

    def task_request(self) -> TaskRequest:
        """The task this estimate is for (raises `ValidationError` for an invalid plan)."""
        return TaskRequest(description=self.description, plan=self.plan, options=self.options)
