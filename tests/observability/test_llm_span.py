"""An LLM call's span: which model of a fallback chain served it, each attribute once; none
in a task the sampler left out, where the call is still counted.

The span is made inside a real activity context (Temporal's `ActivityEnvironment`) by a plain
SDK tracer provider of its own, not the process's global one (`conftest.py` owns that).
"""

from __future__ import annotations

import pytest
from opentelemetry import context, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY
from temporalio.testing import ActivityEnvironment

from mahsm.activities import telemetry
from mahsm.contracts.llm import ChatMessage, LLMPurpose, LLMRequest, LLMResponse
from mahsm.contracts.task import Usage


def request(model: str, fallback: list[str]) -> LLMRequest:
    return LLMRequest(
        model=model,
        purpose=LLMPurpose.AGENT_STEP,
        messages=[ChatMessage(role="user", content="hi")],
        fallback=fallback,
        task_id="task-1",
    )


def counted(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def memory(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """The spans MAHSM's code makes in this test, from a tracer provider of the test's own."""
    finished = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(finished))
    monkeypatch.setattr(trace, "get_tracer", provider.get_tracer)
    return finished


def test_llm_spans_name_the_model_that_served_and_the_rest_of_the_chain(
    memory: InMemorySpanExporter,
) -> None:

    def call(sent: LLMRequest) -> None:
        with telemetry.llm_span(sent):
            pass

    # The chain [openai/a, anthropic/b]: the first model's attempt, then the second's.
    ActivityEnvironment().run(call, request("openai/a", ["anthropic/b"]))
    ActivityEnvironment().run(call, request("anthropic/b", []))

    first, last = (span.attributes or {} for span in memory.get_finished_spans())
    assert first["langfuse.observation.model.name"] == "openai/a"
    assert first["gen_ai.provider.name"] == "openai"
    assert first["mahsm.llm.fallback_next"] == ("anthropic/b",)
    assert last["langfuse.observation.model.name"] == "anthropic/b"
    assert "mahsm.llm.fallback_next" not in last  # the last model: nothing after it
    for attributes in (first, last):
        assert attributes["mahsm.llm.attempt"] == 1
        assert attributes["mahsm.task_id"] == "task-1"
        # Said once: no deprecated or repeated names beside the ones above.
        assert not {"gen_ai.system", "mahsm.llm.model", "temporal.attempt"} & set(attributes)


def test_a_call_in_a_task_left_out_by_the_sampler_makes_no_span_and_is_still_counted(
    memory: InMemorySpanExporter,
) -> None:
    # The task's span as an activity finds it in its headers: valid, not sampled.
    left_out = trace.NonRecordingSpan(
        trace.SpanContext(
            trace_id=0x5A3, span_id=0x7B1, is_remote=True, trace_flags=trace.TraceFlags(0)
        )
    )
    sent = request("scripted/sampled", [])
    response = LLMResponse(
        model="sampled", content="ok", usage=Usage(input_tokens=7, output_tokens=3)
    )
    calls = {"model": "scripted/sampled", "purpose": "agent_step", "outcome": "ok"}
    tokens = {"model": "scripted/sampled", "direction": "input"}
    calls_before = counted("mahsm_llm_calls_total", calls)
    tokens_before = counted("mahsm_llm_tokens_total", tokens)

    def call() -> None:
        token = context.attach(trace.set_span_in_context(left_out))
        try:
            with telemetry.llm_span(sent) as span:
                assert span is left_out  # no child: the task is not traced
                telemetry.record_prompt(span, sent.messages, content=True)
                telemetry.record_llm(span, sent, response, content=True)
        finally:
            context.detach(token)

    ActivityEnvironment().run(call)
    assert memory.get_finished_spans() == ()
    assert counted("mahsm_llm_calls_total", calls) - calls_before == 1
    assert counted("mahsm_llm_tokens_total", tokens) - tokens_before == 7
