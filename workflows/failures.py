"""Reading Temporal failure chains: the message to show, the usage an agent reported."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError, FailureError
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

with workflow.unsafe.imports_passed_through():
    from mahsm.contracts.task import Usage


def failure_message(error: BaseException) -> str:
    """The most useful message in a Temporal failure chain: its innermost application error."""
    found: str | None = None
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, ApplicationError):
            found = current.message
        elif isinstance(current, TemporalTimeoutError) and found is None:
            found = f"timed out ({current.type.name.lower() if current.type else 'timeout'})"
        current = current.cause if isinstance(current, FailureError) else current.__cause__
    return found or str(error)


def usage_of_failure(error: BaseException) -> Usage:
    """The usage an agent reported in its failure details (zero when it reported none)."""
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, ApplicationError) and current.details:
            detail = current.details[0]
            if isinstance(detail, dict) and "input_tokens" in detail:
                return Usage.model_validate(detail)
        current = current.cause if isinstance(current, FailureError) else None
    return Usage()
