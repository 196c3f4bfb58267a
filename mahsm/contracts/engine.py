"""Internal payloads between `TaskWorkflow`, `AgentWorkflow` and the engine's activities."""

from __future__ import annotations

from pydantic import BaseModel, Field

from mahsm.contracts.llm import ChatMessage
from mahsm.contracts.profile import CapabilityInfo, PoolProfile
from mahsm.contracts.task import (
    BlobRef,
    Budget,
    Capability,
    Subtask,
    Usage,
)


class EngineDefaults(BaseModel):
    """The worker's configured defaults, read once per task by a local activity."""

    model: str
    task_timeout_s: float
    subtask_timeout_s: float
    llm_timeout_s: float
    tool_timeout_s: float
    capability_wait_s: float
    claim_check_bytes: int
    # Optional: histories recorded before these existed replay with the defaults.
    inline_history_events: int = 10_000
    inline_history_bytes: int = 16 * 1024 * 1024
    llm_retry_s: float = 600.0
    fallback_attempts: int = 3
    middleware: list[str] = Field(
        default_factory=list, description="the worker's default middleware (MAHSM_MIDDLEWARE)"
    )
    hooked_middleware: list[str] = Field(
        default_factory=list,
        description="registered middleware defining a run or step hook: only a chosen one of"
        " these makes the workflow schedule `middleware_hook`",
    )
    capabilities: list[CapabilityInfo] = Field(
        default_factory=list,
        description="capabilities live pools serve, told to the planner; empty: unknown (the"
        " built-ins are offered and plans are not checked against it)",
    )


class DefaultsRequest(BaseModel):
    """Input of `engine_defaults` (nothing is needed; the model keeps the contract explicit)."""


class DependencyOutput(BaseModel):
    """The output of a finished dependency, given to a dependent subtask as context."""

    subtask_id: str
    description: str
    output: str | None = None
    output_ref: BlobRef | None = None


class AgentInput(BaseModel):
    """Input of `AgentWorkflow`; the last four fields carry a loop across continue-as-new."""

    task_id: str
    task_description: str
    subtask: Subtask
    dependencies: list[DependencyOutput] = Field(default_factory=list)
    model: str
    max_iterations: int
    llm_timeout_s: float
    tool_timeout_s: float
    budget: Budget | None = None
    usage_before: Usage = Field(default_factory=Usage, description="task usage at start")
    messages: list[ChatMessage] = Field(default_factory=list)
    iteration: int = 0
    usage: Usage = Field(default_factory=Usage)
    agent: str | None = None
    history_events_limit: int = Field(
        default=5_000, ge=10, description="continue-as-new once history has this many events"
    )
    tool_capabilities_only: bool = Field(
        default=False,
        description="offer tools by capability, expanded by the worker's own tool catalogue",
    )
    fallback: list[str] = Field(
        default_factory=list, description="models tried after `model` (a fallback chain)"
    )
    fallback_attempts: int = Field(default=3, description="attempts per model of the chain")
    middleware: list[str] | None = Field(
        default=None, description="the task's `options.middleware` (None: the worker default)"
    )
    instructions: str | None = Field(
        default=None, description="from a prompt artifact: instructions and worked examples"
    )
    side_effects: bool = Field(default=True, description="the task's `options.side_effects`")


class AgentResult(BaseModel):
    """Result of `AgentWorkflow`: the answer and the whole transcript."""

    answer: str
    answer_ref: BlobRef | None = Field(default=None, description="a large answer (answer is '')")
    transcript: list[ChatMessage] = Field(default_factory=list)
    transcript_ref: BlobRef | None = None
    usage: Usage = Field(default_factory=Usage)
    iterations: int
    agent: str | None = None


class AgentTranscript(BaseModel):
    """A transcript stored by reference (claim check) when it is too large to travel inline."""

    messages: list[ChatMessage]


class PoolRequest(BaseModel):
    """Input of `resolve_pool`."""

    queue_prefix: str
    capabilities: list[Capability]
    avoid: list[str] = Field(
        default_factory=list,
        description="queues that did not pick up work; chosen only when no other pool is live",
    )


class PoolChoice(BaseModel):
    """Result of `resolve_pool`: the queue of a live pool serving the capabilities."""

    task_queue: str
    workers: list[str] = Field(default_factory=list)
    profile: PoolProfile | None = Field(
        default=None, description="the agent profile serving the pool (None: the default agent)"
    )
    calls_queue: str | None = Field(
        default=None,
        description="where the pool's LLM and tool calls go when not `task_queue`: the task's"
        " own queue, when every worker polling it also serves this pool (None: `task_queue`)",
    )


class BlobText(BaseModel):
    """Input of `blob_put_text`."""

    text: str
