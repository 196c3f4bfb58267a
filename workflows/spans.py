"""Spans of workflow code: task, plan, subtask or step, agent iteration, aggregation.

They use OpenTelemetry's API through the process's tracer provider, which is Temporal's
replay-safe one when tracing is on (`mahsm.tracing`): span ids come from the workflow's
deterministic random, a span ended while history is replayed is not exported, and nothing
here adds a command or an event to the workflow's history. With tracing off every span is
OpenTelemetry's no-op span.

The activities a span's code schedules carry its context in their headers, so their spans
(`mahsm.activities.telemetry`) are its children.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from opentelemetry import context, trace
    from opentelemetry.trace import Span, Status, StatusCode
    from opentelemetry.util.types import AttributeValue

    from mahsm.contracts.task import TaskState, Usage
    from mahsm.tracing import left_out

TRACER = "mahsm.workflows"
TRACE_NAME_CHARS = 80


@contextmanager
def span(
    name: str, attributes: Mapping[str, AttributeValue] | None = None, *, new_trace: bool = False
) -> Iterator[Span]:
    """A span around workflow code; an exception marks it failed (by type, no message).

    `new_trace` makes it the root of a trace of its own (an experiment branch), not a child
    of the current span.

    A workflow evicted from the worker's cache has its coroutines closed (`GeneratorExit`):
    its spans are neither ended nor detached then, since the worker that replays the
    workflow makes the same spans again (same ids) and ends them.
    """
    enclosing = trace.get_current_span()
    if not new_trace and left_out(enclosing):
        yield enclosing  # the task is not traced: nothing to make or end
        return
    parent = context.Context() if new_trace else None
    current = trace.get_tracer(TRACER).start_span(name, context=parent, attributes=attributes)
    token = context.attach(trace.set_span_in_context(current))
    try:
        yield current
    except GeneratorExit:
        raise
    except BaseException as error:
        current.set_status(Status(StatusCode.ERROR, type(error).__name__))
        _close(current, token)
        raise
    _close(current, token)


def _close(current: Span, token: object) -> None:
    current.end()
    context.detach(token)  # type: ignore[arg-type]


def task_attributes(
    *, task_id: str, user_id: str | None, description: str, pipeline: str | None
) -> dict[str, AttributeValue]:
    """The task span's ids and Langfuse's trace fields (name, user, session)."""
    name = pipeline or " ".join(description.split())[:TRACE_NAME_CHARS]
    found: dict[str, AttributeValue] = {
        "mahsm.task_id": task_id,
        "session.id": task_id,
        "langfuse.trace.name": name,
        "langfuse.observation.type": "agent",
    }
    if user_id:
        found["mahsm.user_id"] = user_id
        found["user.id"] = user_id
    if pipeline:
        found["mahsm.pipeline"] = pipeline
    return found


def branch_attributes(
    *, experiment_id: str, name: str, config_id: str, branch: str, label: str, user_id: str | None
) -> dict[str, AttributeValue]:
    """An experiment branch's span: its ids, and Langfuse's trace name and session.

    The session is the experiment, so Langfuse lists an experiment's branch traces together.
    """
    found: dict[str, AttributeValue] = {
        "mahsm.experiment_id": experiment_id,
        "mahsm.config_id": config_id,
        "mahsm.branch": branch,
        "session.id": experiment_id,
        "langfuse.trace.name": f"{name}: {label}"[:TRACE_NAME_CHARS],
        "langfuse.observation.type": "chain",
    }
    if user_id:
        found["mahsm.user_id"] = user_id
        found["user.id"] = user_id
    return found


def record_usage(current: Span, usage: Usage) -> None:
    """Tokens and cost summed under a span (a task's or a subtask's)."""
    current.set_attribute("mahsm.usage.input_tokens", usage.input_tokens)
    current.set_attribute("mahsm.usage.output_tokens", usage.output_tokens)
    current.set_attribute("mahsm.usage.cost_usd", usage.cost_usd)


def record_task_end(current: Span, state: TaskState) -> None:
    """The task's final status and usage on its span."""
    current.set_attribute("mahsm.task.status", state.status.value)
    record_usage(current, state.usage)
    if state.status.value not in ("completed", "cancelled"):
        current.set_status(Status(StatusCode.ERROR, state.status.value))
