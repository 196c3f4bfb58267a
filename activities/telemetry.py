"""Spans and metrics of the LLM and tool activities.

An activity's span is a child of the workflow span that scheduled it (the context travels in
the activity's Temporal headers: `mahsm.tracing`). LLM spans carry the OpenTelemetry GenAI
attributes (`gen_ai.*`) and Langfuse's generation fields (`langfuse.observation.*`), so
Langfuse shows model, tokens and cost; prompt and completion are recorded only when
`MAHSM_TRACE_CONTENT` is true, after the middleware (e.g. `pii`) and the secret redaction
ran over them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode
from temporalio import activity
from temporalio.exceptions import ApplicationError

from mahsm import metrics
from mahsm.contracts.llm import ChatMessage, LLMRequest, LLMResponse
from mahsm.contracts.tools import ToolInvocation, ToolOutcome
from mahsm.redaction import redact_output
from mahsm.tracing import left_out
from mahsm.tracing_export import ACTIVITY_SCOPE

TRACER = ACTIVITY_SCOPE
CONTENT_MAX_CHARS = 32_000
"""Prompt or completion text kept on a span; longer text is cut (the full text is in history)."""


def _clip(text: str) -> str:
    # The only way text reaches `tracing_export.REDACTED_AT_SOURCE` attributes: the export
    # pass trusts this redaction and does not scan them again.
    text = redact_output(text)
    if len(text) <= CONTENT_MAX_CHARS:
        return text
    return text[:CONTENT_MAX_CHARS] + f" ... ({len(text) - CONTENT_MAX_CHARS} more characters)"


def _ids(task_id: str | None, subtask_id: str | None) -> dict[str, Any]:
    info = activity.info()
    found: dict[str, Any] = {
        "temporal.workflow_id": info.workflow_id or "",
        "temporal.activity_id": info.activity_id,
    }
    if task_id:
        found["mahsm.task_id"] = task_id
    if subtask_id:
        found["mahsm.subtask_id"] = subtask_id
    return found


@contextmanager
def llm_span(request: LLMRequest) -> Iterator[Span]:
    """The span of one LLM call attempt; failures are recorded on it and counted.

    Each attribute is said once (every one is encoded and exported for every call): the
    deprecated `gen_ai.system` is left to `gen_ai.provider.name`, the full model name to
    `langfuse.observation.model.name`, the attempt to `mahsm.llm.attempt`, and an empty
    fallback chain is left out.
    """
    started = time.monotonic()
    with _llm_span(request) as span:
        try:
            yield span
        except BaseException as error:
            kind = _error_class(error)
            span.set_status(Status(StatusCode.ERROR, kind))
            span.set_attribute("error.type", kind)
            span.set_attribute("langfuse.observation.level", "ERROR")
            if isinstance(error, ApplicationError):  # its message is already redacted
                span.set_attribute("langfuse.observation.status_message", _clip(error.message))
            metrics.LLM_CALLS.labels(request.model, request.purpose.value, "error").inc()
            metrics.LLM_ERRORS.labels(request.model, kind).inc()
            raise
        finally:
            elapsed = time.monotonic() - started
            span.set_attribute("mahsm.latency_ms", round(elapsed * 1000, 3))
            metrics.LLM_LATENCY.labels(request.model).observe(elapsed)


def _llm_span(request: LLMRequest) -> AbstractContextManager[Span]:
    enclosing = trace.get_current_span()
    if left_out(enclosing):  # the task is not traced: its non-recording span serves
        return nullcontext(enclosing)
    provider, _, model = request.model.partition("/")
    attributes = {
        **_ids(request.task_id, request.subtask_id),
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.request.max_tokens": request.max_output_tokens,
        "mahsm.llm.purpose": request.purpose.value,
        "mahsm.llm.attempt": activity.info().attempt,
        "langfuse.observation.type": "generation",
        "langfuse.observation.model.name": request.model,
    }
    if request.fallback:
        attributes["mahsm.llm.fallback_next"] = list(request.fallback)
    if request.temperature is not None:
        attributes["gen_ai.request.temperature"] = request.temperature
    return trace.get_tracer(TRACER).start_as_current_span(
        f"llm {request.purpose.value} {request.model}",
        kind=trace.SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    )


def _error_class(error: BaseException) -> str:
    if isinstance(error, ApplicationError) and error.type:
        return error.type
    return type(error).__name__


def record_prompt(span: Span, messages: list[ChatMessage], *, content: bool) -> None:
    """Put the prompt (as sent, after middleware) on `span` when content is traced."""
    if not content or not span.is_recording():
        return
    shown = [
        {"role": m.role, "content": m.content if m.content_ref is None else "[blob]"}
        | ({"tool_calls": [c.name for c in m.tool_calls]} if m.tool_calls else {})
        for m in messages
    ]
    span.set_attribute("langfuse.observation.input", _clip(json.dumps(shown)))


def record_llm(span: Span, request: LLMRequest, response: LLMResponse, *, content: bool) -> None:
    """Usage, cost, finish reason (and the completion when traced) of a successful call."""
    usage = response.usage
    model = request.model
    if span.is_recording():  # not in a task the sampler left out
        _record_response(span, response, content=content)
    metrics.LLM_CALLS.labels(model, request.purpose.value, "ok").inc()
    metrics.LLM_TOKENS.labels(model, "input").inc(usage.input_tokens)
    metrics.LLM_TOKENS.labels(model, "output").inc(usage.output_tokens)
    metrics.LLM_COST.labels(model).inc(usage.cost_usd)
    for detection, count in response.detections.items():
        metrics.MIDDLEWARE_DETECTIONS.labels(detection).inc(count)


def _record_response(span: Span, response: LLMResponse, *, content: bool) -> None:
    usage = response.usage
    span.set_attributes(
        {
            "gen_ai.response.model": response.model,
            "gen_ai.usage.input_tokens": usage.input_tokens,
            "gen_ai.usage.output_tokens": usage.output_tokens,
            "gen_ai.response.finish_reasons": [response.finish_reason or "unknown"],
            "mahsm.llm.cost_usd": usage.cost_usd,
            "mahsm.llm.tool_calls": len(response.tool_calls),
            "langfuse.observation.usage_details": json.dumps(
                {
                    "input": usage.input_tokens,
                    "output": usage.output_tokens,
                    "total": usage.total_tokens,
                }
            ),
            "langfuse.observation.cost_details": json.dumps({"total": usage.cost_usd}),
        }
    )
    if content:
        completion: dict[str, Any] = {"content": response.content or ""}
        if response.content_ref is not None:
            completion["content"] = "[blob]"
        if response.tool_calls:
            completion["tool_calls"] = [
                {"name": c.name, "arguments": c.arguments} for c in response.tool_calls
            ]
        span.set_attribute("langfuse.observation.output", _clip(json.dumps(completion)))


class ToolTrace:
    """The span of one tool call and the outcome recorded on it."""

    def __init__(self, span: Span, *, content: bool) -> None:
        self.span = span
        self.content = content
        self.outcome = "infrastructure_error"

    def record(self, outcome: ToolOutcome) -> None:
        """The outcome of the call on its span."""
        self.outcome = "error" if outcome.is_error else "ok"
        self.span.set_attribute("mahsm.tool.is_error", outcome.is_error)
        if outcome.is_error:
            self.span.set_attribute("langfuse.observation.level", "WARNING")
        if self.content and outcome.content is not None:
            self.span.set_attribute("langfuse.observation.output", _clip(outcome.content))


@contextmanager
def tool_span(invocation: ToolInvocation, *, content: bool, known: bool) -> Iterator[ToolTrace]:
    """The span of one tool call; its latency and outcome are counted.

    `known`: the tool is in the worker's catalogue. Metrics label other names `unknown` (a
    model may call any name; label values must stay a bounded set).
    """
    call = invocation.call
    label = call.name if known else "unknown"
    started = time.monotonic()
    traced: ToolTrace | None = None
    try:
        with _tool_span(invocation) as span:
            # Content only on a recorded span: a task the sampler left out skips the redaction.
            traced = ToolTrace(span, content=content and span.is_recording())
            if traced.content and call.arguments_ref is None:
                span.set_attribute("langfuse.observation.input", _clip(call.arguments))
            try:
                yield traced
            except BaseException as error:
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                span.set_attribute("error.type", type(error).__name__)
                raise
    finally:
        outcome = traced.outcome if traced is not None else "infrastructure_error"
        metrics.TOOL_CALLS.labels(label, outcome).inc()
        metrics.TOOL_LATENCY.labels(label).observe(time.monotonic() - started)


def _tool_span(invocation: ToolInvocation) -> AbstractContextManager[Span]:
    enclosing = trace.get_current_span()
    if left_out(enclosing):  # the task is not traced: its non-recording span serves
        return nullcontext(enclosing)
    call = invocation.call
    attributes: dict[str, Any] = {
        **_ids(invocation.task_id, invocation.subtask_id),
        "temporal.attempt": activity.info().attempt,
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": call.name,
        "gen_ai.tool.call.id": call.id,
        "langfuse.observation.type": "tool",
    }
    return trace.get_tracer(TRACER).start_as_current_span(
        f"tool {call.name}",
        attributes=attributes,
        record_exception=False,  # infrastructure errors may quote URLs: type only
        set_status_on_exception=False,
    )
