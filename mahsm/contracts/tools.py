"""Contracts of the `tool_execute` activity."""

from __future__ import annotations

from pydantic import BaseModel, Field

from mahsm.contracts.llm import ToolCall
from mahsm.contracts.task import BlobRef, Capability


class ToolInvocation(BaseModel):
    """Input of `tool_execute`: one tool call of one agent step."""

    task_id: str
    subtask_id: str
    call: ToolCall
    capabilities: list[Capability] = Field(
        default_factory=list, description="the subtask's capabilities; limits which tools run"
    )
    side_effects: bool = Field(
        default=True, description="false: a tool that changes the world is refused"
    )


class ToolOutcome(BaseModel):
    """Result of `tool_execute`: what goes back to the model as a tool message."""

    tool_call_id: str
    name: str
    content: str | None = None
    content_ref: BlobRef | None = None
    is_error: bool = False
