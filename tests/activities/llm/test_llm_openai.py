"""The openai provider through the real `openai` SDK against a local fake server."""

from __future__ import annotations

import json

import pytest

from mahsm.activities.llm.errors import LLMCallError
from mahsm.activities.llm.openai_provider import OpenAIProvider
from mahsm.activities.llm.provider import CallContext
from mahsm.contracts.llm import ChatMessage, LLMPurpose, LLMRequest, ToolCall, ToolSpec
from tests.activities.llm.llm_fake_server import (
    FakeLLMServer,
    Reply,
    openai_completion,
    openai_error,
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
def provider(llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> OpenAIProvider:
    llm_server.use_as_openai(monkeypatch)
    return OpenAIProvider(timeout_s=5)


async def test_tool_call_round_trip(provider: OpenAIProvider, llm_server: FakeLLMServer) -> None:
    llm_server.queue(
        Reply(
            200,
            openai_completion(
                tool_calls=[("call_abc", "calculator", '{"expression": "10!"}')],
                finish_reason="tool_calls",
                prompt_tokens=42,
                completion_tokens=7,
            ),
        )
    )
    request = LLMRequest(
        model="openai/gpt-4o-mini",
        purpose=LLMPurpose.AGENT_STEP,
        messages=[
            ChatMessage(role="system", content="You are careful."),
            ChatMessage(role="user", content="What is 10!?"),
            ChatMessage(
                role="assistant",
                tool_calls=[
                    ToolCall(id="call_0", name="calculator", arguments='{"expression":"1"}')
                ],
            ),
            ChatMessage(role="tool", content="1", tool_call_id="call_0", name="calculator"),
        ],
        tools=[CALCULATOR],
        temperature=0.2,
        max_output_tokens=300,
    )
    reply = await provider.complete(request, model="gpt-4o-mini", context=CallContext())

    assert reply.content is None
    assert [(c.id, c.name, json.loads(c.arguments)) for c in reply.tool_calls] == [
        ("call_abc", "calculator", {"expression": "10!"})
    ]
    assert reply.finish_reason == "tool_calls"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (42, 7)
    assert reply.model == "openai/gpt-4o-mini"

    (sent,) = llm_server.received
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test-key-0123456789"
    assert sent.body["model"] == "gpt-4o-mini"
    assert sent.body["temperature"] == 0.2
    assert sent.body["max_tokens"] == 300  # a custom base URL gets the widely supported name
    assert sent.body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "calculator",
                "description": "Evaluate arithmetic.",
                "parameters": CALCULATOR.parameters,
            },
        }
    ]
    assert [m["role"] for m in sent.body["messages"]] == ["system", "user", "assistant", "tool"]
    assert sent.body["messages"][2]["tool_calls"] == [
        {
            "id": "call_0",
            "type": "function",
            "function": {"name": "calculator", "arguments": '{"expression":"1"}'},
        }
    ]
    assert sent.body["messages"][3] == {"role": "tool", "tool_call_id": "call_0", "content": "1"}
    assert "response_format" not in sent.body


async def test_structured_output_uses_json_schema(
    provider: OpenAIProvider, llm_server: FakeLLMServer
) -> None:
    plan = {"subtasks": [{"id": "a", "description": "d", "required_capabilities": ["x"]}]}
    llm_server.queue(Reply(200, openai_completion(content=json.dumps(plan))))
    request = LLMRequest(
        model="openai/gpt-4o-mini",
        purpose=LLMPurpose.PLAN,
        messages=[ChatMessage(role="user", content="plan this")],
        response_schema=PLAN_SCHEMA,
    )
    reply = await provider.complete(request, model="gpt-4o-mini", context=CallContext())
    assert json.loads(reply.content or "") == plan
    assert llm_server.received[0].body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Plan", "schema": PLAN_SCHEMA, "strict": False},
    }


@pytest.mark.parametrize(
    ("status", "headers", "kind", "retryable", "retry_after"),
    [
        (429, {"retry-after": "3"}, "rate_limit", True, 3.0),
        (429, {"retry-after-ms": "250", "retry-after": "9"}, "rate_limit", True, 0.25),
        (503, {}, "server_error", True, None),
        (408, {}, "timeout", True, None),
        (409, {}, "server_error", True, None),
        (400, {}, "bad_request", False, None),
        (401, {}, "auth", False, None),
        (403, {}, "permission", False, None),
        (404, {}, "not_found", False, None),
    ],
)
async def test_http_errors_are_classified(
    provider: OpenAIProvider,
    llm_server: FakeLLMServer,
    status: int,
    headers: dict[str, str],
    kind: str,
    retryable: bool,
    retry_after: float | None,
) -> None:
    llm_server.queue(
        Reply(status, openai_error("Incorrect API key provided: sk-live-abcdef123456"), headers)
    )
    request = LLMRequest(
        model="openai/gpt-4o-mini",
        purpose=LLMPurpose.AGENT_STEP,
        messages=[ChatMessage(role="user", content="hi")],
    )
    with pytest.raises(LLMCallError) as raised:
        await provider.complete(request, model="gpt-4o-mini", context=CallContext())
    error = raised.value
    assert (error.status, error.kind, error.retryable, error.retry_after) == (
        status,
        kind,
        retryable,
        retry_after,
    )
    assert len(llm_server.received) == 1  # the SDK's own retries are off
    assert "sk-live-abcdef123456" not in error.message
    if status == 401:
        assert "check OPENAI_API_KEY" in error.message


async def test_connection_refused_is_retryable(monkeypatch: pytest.MonkeyPatch) -> None:
    from mahsm.devstack.process import free_port

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    provider = OpenAIProvider(base_url=f"http://127.0.0.1:{free_port()}/v1", timeout_s=2)
    request = LLMRequest(
        model="openai/gpt-4o-mini",
        purpose=LLMPurpose.AGENT_STEP,
        messages=[ChatMessage(role="user", content="hi")],
    )
    with pytest.raises(LLMCallError) as raised:
        await provider.complete(request, model="gpt-4o-mini", context=CallContext())
    assert raised.value.retryable and raised.value.status is None
    assert "OPENAI_BASE_URL" in raised.value.message


def test_missing_key_is_a_non_retryable_auth_error() -> None:
    with pytest.raises(LLMCallError) as raised:
        OpenAIProvider()
    assert raised.value.kind == "auth" and not raised.value.retryable
    assert "OPENAI_API_KEY" in raised.value.message


def test_official_api_gets_max_completion_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert OpenAIProvider().token_param == "max_completion_tokens"
