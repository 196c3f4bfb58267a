"""An LLM call's span says which model of a fallback chain served it, each attribute once.

The span is made inside a real activity context (Temporal's `ActivityEnvironment`) by a plain
SDK tracer provider of its own, not the process's global one (`conftest.py` owns that).
"""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.testing import ActivityEnvironment

from mahsm.activities import telemetry
from mahsm.contracts.llm import ChatMessage, LLMPurpose, LLMRequest


def request(model: str, fallback: list[str]) -> LLMRequest:
    return LLMRequest(
        model=model,
        purpose=LLMPurpose.AGENT_STEP,
        messages=[ChatMessage(role="user", content="hi")],
        fallback=fallback,
        task_id="task-1",
    )


def test_llm_spans_name_the_model_that_served_and_the_rest_of_the_chain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    monkeypatch.setattr(trace, "get_tracer", provider.get_tracer)

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
