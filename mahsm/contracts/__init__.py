"""Pydantic contracts shared by workflows, activities, the API and the client."""

from mahsm.contracts.llm import (
    ChatMessage,
    LLMPurpose,
    LLMRequest,
    LLMResponse,
    ToolCall,
    ToolSpec,
)
from mahsm.contracts.task import (
    ApprovalDecision,
    ApprovalOutcome,
    BlobRef,
    Budget,
    Capability,
    Plan,
    Subtask,
    SubtaskResult,
    SubtaskState,
    SubtaskStatus,
    TaskOptions,
    TaskRequest,
    TaskState,
    TaskStatus,
    Usage,
)
from mahsm.contracts.tools import ToolInvocation, ToolOutcome

__all__ = [
    "ApprovalDecision",
    "ApprovalOutcome",
    "BlobRef",
    "Budget",
    "Capability",
    "ChatMessage",
    "LLMPurpose",
    "LLMRequest",
    "LLMResponse",
    "Plan",
    "Subtask",
    "SubtaskResult",
    "SubtaskState",
    "SubtaskStatus",
    "TaskOptions",
    "TaskRequest",
    "TaskState",
    "TaskStatus",
    "ToolCall",
    "ToolInvocation",
    "ToolOutcome",
    "ToolSpec",
    "Usage",
]
