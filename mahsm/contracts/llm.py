"""Contracts of the `llm_complete` activity and of LLM providers."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from mahsm.contracts.projection import StoreWrite
from mahsm.contracts.task import MODEL_ID_PATTERN, BlobRef, Capability, Usage


class LLMPurpose(StrEnum):
    """Why a call is made; scripted scenarios and prompts branch on it."""

    PLAN = "plan"
    AGENT_STEP = "agent_step"
    AGGREGATE = "aggregate"
    STEP = "step"
    """A pipeline's `llm` step."""


class ToolCall(BaseModel):
    """A tool call the model asked for. `arguments` is the JSON text the model produced.

    Arguments over the claim-check threshold travel as `arguments_ref` (and `arguments` is
    then empty); the activities that use them (`llm_complete`, `tool_execute`) resolve it.
    """

    id: str
    name: str
    arguments: str = "{}"
    arguments_ref: BlobRef | None = Field(
        default=None, description="claim check of `arguments` when they are large"
    )


class ChatMessage(BaseModel):
    """One message of a conversation; large contents travel as a blob reference."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    content_ref: BlobRef | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = Field(default=None, description="tool name, on tool messages")
    is_error: bool = False


class ToolSpec(BaseModel):
    """A tool as offered to the model: an OpenAI function schema."""

    name: str
    description: str
    parameters: dict[str, Any]


class LLMRequest(BaseModel):
    """Input of the `llm_complete` activity."""

    model: str = Field(pattern=MODEL_ID_PATTERN, description="'provider/model'")
    purpose: LLMPurpose
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[ToolSpec] = Field(default_factory=list)
    response_schema: dict[str, Any] | None = Field(
        default=None, description="JSON schema the answer must follow (structured output)"
    )
    response_schema_name: str | None = None
    max_output_tokens: int = Field(default=4096, gt=0)
    temperature: float | None = Field(default=None, ge=0, le=2)
    task_id: str | None = None
    subtask_id: str | None = None
    tool_capabilities: list[Capability] | None = Field(
        default=None,
        description="offer the tools the worker's own catalogue allows for these capabilities"
        " (added to `tools`), so the tools offered are the tools the worker runs",
    )
    projection: StoreWrite | None = Field(
        default=None,
        description="a pending write of the task's Postgres projection; the activity writes"
        " it while the call runs, so the engine needs no activity of its own for it",
    )
    side_effects: bool = Field(
        default=True, description="false: tools that change the world are not offered"
    )
    middleware: list[str] | None = Field(
        default=None,
        description="middleware run around the call, in order; None: the worker's default",
    )
    fallback: list[str] = Field(
        default_factory=list,
        description="models tried in order after `model` when its retries are exhausted or"
        " its circuit breaker is open; the engine switches, the activity calls `model` only",
    )


class LLMResponse(BaseModel):
    """Result of the `llm_complete` activity."""

    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    model: str
    finish_reason: str | None = None
    worker: str | None = Field(default=None, description="identity of the worker that ran it")
    projection_written: bool = Field(
        default=False, description="the request's `projection` reached Postgres"
    )
    content_ref: BlobRef | None = Field(
        default=None, description="claim check of `content` when it is large (content is None)"
    )
    detections: dict[str, int] = Field(
        default_factory=dict,
        description="what middleware found, counted by '<middleware>.<kind>' (never the text)",
    )
    notes: list[str] = Field(
        default_factory=list,
        description="events for the task's log (a circuit breaker's transition, a fallback)",
    )
