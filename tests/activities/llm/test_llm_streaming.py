"""Streaming providers: the real SDKs' streaming APIs against local servers speaking them.

A streamed call (`CallContext.on_text` set) must pass every text delta on, in order, and
return the very `LLMResponse` the plain call returns; a stream that breaks off is a
retryable error.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from mahsm.activities.llm.anthropic_provider import AnthropicProvider
from mahsm.activities.llm.errors import LLMCallError
from mahsm.activities.llm.openai_provider import OpenAIProvider
from mahsm.activities.llm.provider import CallContext, LLMProvider
from mahsm.contracts.llm import ChatMessage, LLMPurpose, LLMRequest, LLMResponse, ToolSpec
from tests.activities.llm.llm_fake_server import (
    OPENAI_TEST_KEY,
    FakeLLMServer,
    Reply,
    anthropic_message,
    openai_completion,
)

LOOKUP = ToolSpec(
    name="lookup",
    description="Look a word up.",
    parameters={"type": "object", "properties": {"word": {"type": "string"}}},
)
PLAN_SCHEMA = {"type": "object", "properties": {"subtasks": {"type": "array"}}}
LONG_TEXT = "The quick brown fox\njumps over the lazy dog, " * 3 + "and ends."

OPENAI_CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "text": ({}, openai_completion(content=LONG_TEXT, prompt_tokens=31, completion_tokens=27)),
    "tool_calls": (
        {"tools": [LOOKUP]},
        openai_completion(
            content="Let me look.",
            tool_calls=[
                ("call_1", "lookup", '{"word": "fox"}'),
                ("call_2", "lookup", '{"word": "dog"}'),
            ],
            finish_reason="tool_calls",
        ),
    ),
    "length": ({}, openai_completion(content="cut sho", finish_reason="length")),
    "structured": (
        {"response_schema": PLAN_SCHEMA},
        openai_completion(content=json.dumps({"subtasks": [{"id": "a"}]})),
    ),
}
ANTHROPIC_CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "text": (
        {},
        anthropic_message(
            [{"type": "text", "text": LONG_TEXT}], input_tokens=40, cache_read_input_tokens=7
        ),
    ),
    "tool_use": (
        {"tools": [LOOKUP]},
        anthropic_message(
            [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"word": "fox"}},
            ],
            stop_reason="tool_use",
        ),
    ),
    "structured": (
        {"response_schema": PLAN_SCHEMA},
        anthropic_message(
            [
                {
                    "type": "tool_use",
                    "id": "toolu_2",
                    "name": "Plan",
                    "input": {"subtasks": [{"id": "a", "depends_on": []}]},
                }
            ],
            stop_reason="tool_use",
        ),
    ),
}


def _request(model: str, **fields: Any) -> LLMRequest:
    return LLMRequest(
        model=model,
        purpose=LLMPurpose.PLAN if "response_schema" in fields else LLMPurpose.AGENT_STEP,
        messages=[ChatMessage(role="user", content="Tell me about the fox.")],
        **fields,
    )


def _openai(server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> OpenAIProvider:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_TEST_KEY)
    return OpenAIProvider(base_url=server.openai_url, timeout_s=5)


def _anthropic(server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> AnthropicProvider:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0123456789")
    return AnthropicProvider(base_url=server.url, timeout_s=5)


async def _both_ways(
    provider: LLMProvider, server: FakeLLMServer, request: LLMRequest, body: dict[str, Any]
) -> tuple[LLMResponse, LLMResponse, list[str]]:
    """The plain answer, the streamed answer and the deltas streamed."""
    server.queue(Reply(200, body), Reply(200, body))
    model = request.model.partition("/")[2]
    plain = await provider.complete(request, model=model, context=CallContext())
    deltas: list[str] = []
    streamed = await provider.complete(
        request, model=model, context=CallContext(on_text=deltas.append)
    )
    return plain, streamed, deltas


@pytest.mark.parametrize("case", sorted(OPENAI_CASES))
async def test_openai_streamed_answer_equals_plain_answer(
    case: str, llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    fields, body = OPENAI_CASES[case]
    request = _request("openai/gpt-4o-mini", **fields)
    plain, streamed, deltas = await _both_ways(
        _openai(llm_server, monkeypatch), llm_server, request, body
    )
    assert streamed == plain
    assert "".join(deltas) == (plain.content or "")
    assert len(deltas) > 1 or len((plain.content or "").split()) <= 1
    first, second = (r.body for r in llm_server.received)
    assert "stream" not in first
    assert second["stream"] is True
    assert second["stream_options"] == {"include_usage": True}
    assert plain.usage.input_tokens == body["usage"]["prompt_tokens"]


@pytest.mark.parametrize("case", sorted(ANTHROPIC_CASES))
async def test_anthropic_streamed_answer_equals_plain_answer(
    case: str, llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    fields, body = ANTHROPIC_CASES[case]
    request = _request("anthropic/claude-test", **fields)
    plain, streamed, deltas = await _both_ways(
        _anthropic(llm_server, monkeypatch), llm_server, request, body
    )
    assert streamed == plain
    texts = "".join(b["text"] for b in body["content"] if b["type"] == "text")
    assert "".join(deltas) == texts
    first, second = (r.body for r in llm_server.received)
    assert "stream" not in first
    assert second["stream"] is True
    assert plain.usage.output_tokens == body["usage"]["output_tokens"]


@pytest.mark.parametrize("name", ["openai", "anthropic"])
async def test_a_stream_that_breaks_off_is_a_retryable_error(
    name: str, llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    if name == "openai":
        provider: LLMProvider = _openai(llm_server, monkeypatch)
        body = OPENAI_CASES["text"][1]
        model = "gpt-4o-mini"
    else:
        provider = _anthropic(llm_server, monkeypatch)
        body = ANTHROPIC_CASES["text"][1]
        model = "claude-test"
    llm_server.queue(Reply(200, body, cut_after=4))
    deltas: list[str] = []
    with pytest.raises(LLMCallError) as raised:
        await provider.complete(
            _request(f"{name}/{model}"), model=model, context=CallContext(on_text=deltas.append)
        )
    assert raised.value.retryable
    assert "broke off" in raised.value.message
    assert deltas  # the part that arrived was streamed
    assert LONG_TEXT.startswith("".join(deltas)) and "".join(deltas) != LONG_TEXT
