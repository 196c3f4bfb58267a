"""MAHSM's exceptions, carrying the API's stable `code`, a human `message` and an HTTP status.

The REST API answers errors as `{"code", "message", "details"}`; `MahsmClient` raises these
classes in both of its modes, and `mahsm.task_driver` raises them for the API and the client
alike, so a failure reads the same whoever drives the task.
"""

from __future__ import annotations

from typing import Any


class MahsmError(Exception):
    """Any failure of a MAHSM call.

    Args:
        message: What happened and how to fix it.
        code: Stable, machine-readable code (the API's `code`, e.g. "task_not_found").
        status: HTTP status of the answer (REST mode), or the one the API answers for it.
        details: Structured context from the API, if any.
    """

    default_code = "error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.status = status
        self.details = details

    def __str__(self) -> str:
        return f"{self.message} ({self.code})"


class TaskNotFound(MahsmError):
    """No task with this id (or it belongs to another user): HTTP 404."""

    default_code = "task_not_found"


class Conflict(MahsmError):
    """The task is not in a state that allows the call, e.g. approving a running task: 409."""

    default_code = "conflict"


class AuthError(MahsmError):
    """The API key is missing or wrong: HTTP 401/403."""

    default_code = "unauthorized"


class InvalidRequest(MahsmError):
    """The request breaks the contract (HTTP 422); the message names the field."""

    default_code = "validation_error"


class ServiceUnavailable(MahsmError):
    """The API, Temporal or the database cannot be reached (connection refused, 503)."""

    default_code = "service_unavailable"
