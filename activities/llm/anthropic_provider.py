"""The `anthropic` provider: the Messages API through the official `anthropic` SDK.

System messages become the `system` prompt; assistant tool calls become `tool_use` blocks and
tool messages `tool_result` blocks. Structured output uses a forced tool named after the
schema, whose input is returned as the JSON content. Credentials come from the worker's
environment (`ANTHROPIC_API_KEY`, or the SDK's other credential sources); the SDK's own
retries are off (`max_retries=0`): Temporal owns retrying.

When the call is watched live (`CallContext.on_text`), the message is streamed with the SDK's
`messages.stream`, whose accumulated final `Message` is read by the same code as a plain reply.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
from anthropic.types import Message, TextBlock, ToolUseBlock

from mahsm.activities.llm.errors import (
    LLMCallError,
    classify_sdk_error,
    interrupted_stream,
    schema_error,
)
from mahsm.activities.llm.provider import CallContext
from mahsm.contracts.llm import ChatMessage, LLMRequest, LLMResponse, ToolCall
from mahsm.contracts.task import Usage
from mahsm.settings import Settings

KEY_ENV = "ANTHROPIC_API_KEY"
BASE_URL_ENV = "ANTHROPIC_BASE_URL"
_NAME = "anthropic"
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
}


def _tool_input(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments)
    except ValueError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"_value": value}


def _blocks(message: ChatMessage) -> list[dict[str, Any]]:
    if message.role == "tool":
        if not message.tool_call_id:
            raise LLMCallError(
                "anthropic: a tool message has no tool_call_id. Fix: set it to the id of the "
                "assistant tool call it answers",
                kind="bad_request",
                retryable=False,
            )
        block: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": message.tool_call_id,
            "content": message.content or "",
        }
        if message.is_error:
            block["is_error"] = True
        return [block]
    blocks: list[dict[str, Any]] = []
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls:
        blocks.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": _tool_input(call.arguments),
            }
        )
    return blocks


def to_anthropic_messages(messages: list[ChatMessage]) -> tuple[str | None, list[dict[str, Any]]]:
    """(system prompt, messages) for the Messages API.

    Tool messages become `tool_result` blocks of a user message; consecutive messages of the
    same role are merged, as the API expects alternating turns.
    """
    system = "\n\n".join(m.content or "" for m in messages if m.role == "system") or None
    result: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if not blocks:
            continue
        if result and result[-1]["role"] == role:
            result[-1]["content"].extend(blocks)
        else:
            result.append({"role": role, "content": blocks})
    return system, result


def build_params(request: LLMRequest, *, model: str) -> dict[str, Any]:
    """The keyword arguments of `messages.create` for `request`."""
    system, messages = to_anthropic_messages(request.messages)
    params: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": request.max_output_tokens,
    }
    if system:
        params["system"] = system
    if request.temperature is not None:
        params["temperature"] = min(request.temperature, 1.0)
    tools = [
        {"name": t.name, "description": t.description, "input_schema": t.parameters}
        for t in request.tools
    ]
    if request.response_schema is not None:
        name = request.response_schema_name or "Plan"
        tools.append(
            {
                "name": name,
                "description": f"Return the answer as a {name} object.",
                "input_schema": request.response_schema,
            }
        )
        params["tool_choice"] = {"type": "tool", "name": name}
    if tools:
        params["tools"] = tools
    return params


def classify(error: anthropic.AnthropicError) -> LLMCallError:
    """An SDK exception as a classified `LLMCallError`."""
    return classify_sdk_error(
        error, sdk=anthropic, provider=_NAME, key_env=KEY_ENV, base_url_env=BASE_URL_ENV
    )


class AnthropicProvider:
    """Messages API with tool use, and structured output by a forced tool.

    Args:
        api_key: The key; `ANTHROPIC_API_KEY` (or the SDK's other sources) when None.
        base_url: The API root; `ANTHROPIC_BASE_URL` when None, else api.anthropic.com.
        timeout_s: Per-request timeout of the SDK client.
    """

    def __init__(
        self, *, api_key: str | None = None, base_url: str | None = None, timeout_s: float = 120.0
    ) -> None:
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key or os.environ.get(KEY_ENV) or None,
            base_url=base_url or os.environ.get(BASE_URL_ENV) or None,
            max_retries=0,
            timeout=timeout_s,
        )
        client = self._client
        if client.api_key is None and client.auth_token is None and client.credentials is None:
            raise LLMCallError(
                f"anthropic: no credentials. Fix: check {KEY_ENV} in the worker's environment",
                kind="auth",
                retryable=False,
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> AnthropicProvider:
        """The provider of a worker: keys from its environment, timeout from its settings."""
        return cls(timeout_s=settings.llm_timeout_s)

    async def complete(
        self, request: LLMRequest, *, model: str, context: CallContext
    ) -> LLMResponse:
        """Run one Messages API call (see `LLMProvider.complete`)."""
        params = build_params(request, model=model)
        try:
            if context.on_text is None:
                reply = await self._client.messages.create(**params)
            else:
                reply = await self._streamed(params, context.on_text)
        except anthropic.AnthropicError as error:
            raise classify(error) from error
        except httpx.TransportError as error:  # the stream broke off mid-answer
            raise interrupted_stream(_NAME, f"{type(error).__name__}: {error}") from error
        return _response(reply, request)

    async def _streamed(self, params: dict[str, Any], on_text: Callable[[str], None]) -> Message:
        """The message, streamed: each text delta goes to `on_text` as it arrives."""
        async with self._client.messages.stream(**params) as stream:
            async for event in stream:
                if event.type == "text" and event.text:
                    on_text(event.text)
            reply = await stream.get_final_message()
        if reply.stop_reason is None:
            raise interrupted_stream(_NAME, "the stream ended without a stop_reason")
        return reply


def _response(reply: Message, request: LLMRequest) -> LLMResponse:
    """The `LLMResponse` of a reply, plain or assembled from a stream."""
    texts = [b.text for b in reply.content if isinstance(b, TextBlock)]
    uses = [b for b in reply.content if isinstance(b, ToolUseBlock)]
    content: str | None = "".join(texts) if texts else None
    calls = [ToolCall(id=b.id, name=b.name, arguments=json.dumps(b.input)) for b in uses]
    finish = _FINISH.get(reply.stop_reason or "", reply.stop_reason)
    if request.response_schema is not None:
        name = request.response_schema_name or "Plan"
        forced = next((b for b in uses if b.name == name), None)
        if forced is None:
            raise schema_error(_NAME, f"the reply has no {name!r} tool call")
        content, calls, finish = json.dumps(forced.input), [], "stop"
    usage = reply.usage
    input_tokens = (
        usage.input_tokens
        + (usage.cache_creation_input_tokens or 0)
        + (usage.cache_read_input_tokens or 0)
    )
    return LLMResponse(
        content=content,
        tool_calls=calls,
        usage=Usage(input_tokens=input_tokens, output_tokens=usage.output_tokens),
        model=request.model,
        finish_reason=finish,
    )
