"""Response bodies of the read-only endpoints the dashboard uses: transcripts, logs, config."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field


class TranscriptEntry(BaseModel):
    """One message of an agent's conversation, or an `error` entry for a failed call."""

    role: Literal["system", "user", "assistant", "tool", "error"]
    content: str | None = None
    tool_calls: list[dict[str, Any]] = Field(
        default_factory=list, description="`{id, name, arguments}`; arguments as JSON text"
    )
    tool_call_id: str | None = None
    name: str | None = Field(default=None, description="tool name, on tool messages")
    is_error: bool = False


class TranscriptView(BaseModel):
    """Answer of `GET /tasks/{task_id}/subtasks/{subtask_id}/transcript`."""

    task_id: str
    subtask_id: str
    available: bool = Field(
        description="false when Temporal no longer has the task's history (retention)"
    )
    entries: list[TranscriptEntry]


class LogLevel(StrEnum):
    """How serious a log event is, derived from its kind and status."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogEntry(BaseModel):
    """One event of a task's log, as `GET /logs` lists it."""

    task_id: str
    seq: int
    kind: str
    level: LogLevel
    subtask_id: str | None
    status: str | None
    message: str | None
    at: datetime


class LogPage(BaseModel):
    """One page of `GET /logs`, newest first; pass `next_cursor` as `cursor` for the next."""

    events: list[LogEntry]
    next_cursor: str | None


class DashboardConfig(BaseModel):
    """What the dashboard page needs to know about this API: no secrets."""

    auth_required: bool = Field(description="true when API keys are configured")
    default_model: str
    models: list[str] = Field(description="models with a configured price, and the default")
    temporal_ui_url: str
    temporal_namespace: str
