"""The anthropic provider through the real `anthropic` SDK against a local fake server."""

from __future__ import annotations

import json

import pytest

from mahsm.activities.llm.anthropic_provider import AnthropicProvider
from mahsm.activities.llm.errors import LLMCallError
from mahsm.activities.llm.provider import CallContext
from mahsm.contracts.llm import ChatMessage, LLMPurpose, LLMRequest, ToolCall, ToolSpec
from tests.activities.llm.llm_fake_server import (
    FakeLLMServer,
    Reply,
    anthropic_error,
    anthropic_message,
)

CALCULATOR = ToolSpec(
    name="calculator",
    description="Evaluate arithmetic.",
    parameters={
        "type": "object",
        "properties": {"expression": {"type": "string"}},
        "required": ["expression"],
    },
)
PLAN_SCHEMA = {"type": "object", "properties": {"subtasks": {"type": "array"}}}


@pytest.fixture
def provider(llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> AnthropicProvider:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0123456789")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", llm_server.url)
    return AnthropicProvider(timeout_s=5)


async def test_tool_use_round_trip(provider: AnthropicProvider, llm_server: FakeLLMServer) -> None:
    llm_server.queue(
        Reply(
            200,
            anthropic_message(
                [
                    {"type": "text", "text": "Let me compute."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "calculator",
                        "input": {"expression": "10!"},
                    },
                ],
                stop_reason="tool_use",
                input_tokens=30,
                output_tokens=10,
                cache_read_input_tokens=5,
            ),
        )
    )
    request = LLMRequest(
        model="anthropic/claude-test-model",
        purpose=LLMPurpose.AGENT_STEP,
        messages=[
            ChatMessage(role="system", content="You are careful."),
            ChatMessage(role="user", content="What is 10! and 2+2?"),
            ChatMessage(
                role="assistant",
                content="Two calls.",
                tool_calls=[
                    ToolCall(id="toolu_a", name="calculator", arguments='{"expression": "2+2"}'),
                    ToolCall(id="toolu_b", name="calculator", arguments='{"expression": "1/0"}'),
                ],
            ),
            ChatMessage(role="tool", content="4", tool_call_id="toolu_a"),
            ChatMessage(
                role="tool", content="division by zero", tool_call_id="toolu_b", is_error=True
            ),
        ],
        tools=[CALCULATOR],
        max_output_tokens=256,
    )
    reply = await provider.complete(request, model="claude-test-model", context=CallContext())

    assert reply.content == "Let me compute."
    assert [(c.id, c.name, json.loads(c.arguments)) for c in reply.tool_calls] == [
        ("toolu_1", "calculator", {"expression": "10!"})
    ]
    assert reply.finish_reason == "tool_calls"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (35, 10)

    (sent,) = llm_server.received
    assert sent.path == "/v1/messages"
    auth = sent.headers.get("x-api-key") or sent.headers.get("authorization", "")
    assert auth.endswith("sk-ant-test-0123456789")
    body = sent.body
    assert body["model"] == "claude-test-model"
    assert body["max_tokens"] == 256
    assert body["system"] == "You are careful."
    assert body["tools"] == [
        {
            "name": "calculator",
            "description": "Evaluate arithmetic.",
            "input_schema": CALCULATOR.parameters,
        }
    ]
    assert "tool_choice" not in body
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "What is 10! and 2+2?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Two calls."},
                {
                    "type": "tool_use",
                    "id": "toolu_a",
                    "name": "calculator",
                    "input": {"expression": "2+2"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_b",
                    "name": "calculator",
                    "input": {"expression": "1/0"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "4"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_b",
                    "content": "division by zero",
                    "is_error": True,
                },
            ],
        },
    ]


async def test_structured_output_by_forced_tool(
    provider: AnthropicProvider, llm_server: FakeLLMServer
) -> None:
    plan = {"subtasks": [{"id": "a", "description": "d", "required_capabilities": ["x"]}]}
    llm_server.queue(
        Reply(
            200,
            anthropic_message(
                [{"type": "tool_use", "id": "toolu_p", "name": "Plan", "input": plan}],
                stop_reason="tool_use",
            ),
        )
    )
    request = LLMRequest(
        model="anthropic/claude-test-model",
        purpose=LLMPurpose.PLAN,
        messages=[ChatMessage(role="user", content="plan this")],
        response_schema=PLAN_SCHEMA,
    )
    reply = await provider.complete(request, model="claude-test-model", context=CallContext())
    assert json.loads(reply.content or "") == plan
    assert reply.tool_calls == []
    assert reply.finish_reason == "stop"
    body = llm_server.received[0].body
    assert body["tool_choice"] == {"type": "tool", "name": "Plan"}
    assert body["tools"][-1]["name"] == "Plan"
    assert body["tools"][-1]["input_schema"] == PLAN_SCHEMA


async def test_missing_forced_tool_is_a_schema_error(
    provider: AnthropicProvider, llm_server: FakeLLMServer
) -> None:
    llm_server.queue(Reply(200, anthropic_message([{"type": "text", "text": "no plan"}])))
    request = LLMRequest(
        model="anthropic/claude-test-model",
        purpose=LLMPurpose.PLAN,
        messages=[ChatMessage(role="user", content="plan this")],
        response_schema=PLAN_SCHEMA,
        response_schema_name="TaskPlan",
    )
    with pytest.raises(LLMCallError) as raised:
        await provider.complete(request, model="claude-test-model", context=CallContext())
    assert raised.value.kind == "schema" and not raised.value.retryable
    assert "TaskPlan" in raised.value.message


@pytest.mark.parametrize(
    ("status", "error_type", "headers", "kind", "retryable", "retry_after"),
    [
        (429, "rate_limit_error", {"retry-after": "2"}, "rate_limit", True, 2.0),
        (529, "overloaded_error", {}, "server_error", True, None),
        (500, "api_error", {}, "server_error", True, None),
        (400, "invalid_request_error", {}, "bad_request", False, None),
        (401, "authentication_error", {}, "auth", False, None),
        (403, "permission_error", {}, "permission", False, None),
        (404, "not_found_error", {}, "not_found", False, None),
    ],
)
async def test_http_errors_are_classified(
    provider: AnthropicProvider,
    llm_server: FakeLLMServer,
    status: int,
    error_type: str,
    headers: dict[str, str],
    kind: str,
    retryable: bool,
    retry_after: float | None,
) -> None:
    llm_server.queue(Reply(status, anthropic_error("something happened", error_type), headers))
    request = LLMRequest(
        model="anthropic/claude-test-model",
        purpose=LLMPurpose.AGENT_STEP,
        messages=[ChatMessage(role="user", content="hi")],
    )
    with pytest.raises(LLMCallError) as raised:
        await provider.complete(request, model="claude-test-model", context=CallContext())
    error = raised.value
    assert (error.status, error.kind, error.retryable, error.retry_after) == (
        status,
        kind,
        retryable,
        retry_after,
    )
    assert "something happened" in error.message
    assert len(llm_server.received) == 1  # the SDK's own retries are off
    if status == 401:
        assert "check ANTHROPIC_API_KEY" in error.message
