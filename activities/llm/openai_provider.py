"""The `openai` provider: chat completions through the official `openai` SDK.

Also serves any OpenAI-compatible server (vLLM, Ollama, llama.cpp) through `OPENAI_BASE_URL`.
Credentials come from the worker's environment (`OPENAI_API_KEY`), never from the request.
The SDK's own retries are off (`max_retries=0`): Temporal owns retrying.

When the call is watched live (`CallContext.on_text`), the completion is streamed
(`stream=True`, `stream_options.include_usage`) and assembled by the SDK's own
`ChatCompletionStreamState`, then read by the same code as a plain completion.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import httpx
import openai
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion

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

KEY_ENV = "OPENAI_API_KEY"
BASE_URL_ENV = "OPENAI_BASE_URL"
_NAME = "openai"
_LOCAL_KEY = "unused"


def to_openai_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """MAHSM messages as chat-completions messages (tool calls as `function` calls)."""
    result: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "assistant":
            item: dict[str, Any] = {"role": "assistant", "content": message.content}
            if message.tool_calls:
                item["tool_calls"] = [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    }
                    for call in message.tool_calls
                ]
            result.append(item)
        elif message.role == "tool":
            if not message.tool_call_id:
                raise LLMCallError(
                    "openai: a tool message has no tool_call_id. Fix: set it to the id of the "
                    "assistant tool call it answers",
                    kind="bad_request",
                    retryable=False,
                )
            result.append(
                {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
            )
        else:
            result.append({"role": message.role, "content": message.content or ""})
    return result


def build_params(request: LLMRequest, *, model: str, token_param: str) -> dict[str, Any]:
    """The keyword arguments of `chat.completions.create` for `request`."""
    params: dict[str, Any] = {
        "model": model,
        "messages": to_openai_messages(request.messages),
        token_param: request.max_output_tokens,
    }
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.tools:
        params["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                },
            }
            for tool in request.tools
        ]
    if request.response_schema is not None:
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": request.response_schema_name or "Plan",
                "schema": request.response_schema,
                "strict": False,
            },
        }
    return params


def classify(error: openai.OpenAIError) -> LLMCallError:
    """An SDK exception as a classified `LLMCallError`."""
    return classify_sdk_error(
        error, sdk=openai, provider=_NAME, key_env=KEY_ENV, base_url_env=BASE_URL_ENV
    )


class OpenAIProvider:
    """Chat completions with function calling and json_schema structured output.

    Args:
        api_key: The key; `OPENAI_API_KEY` when None. May be absent when `base_url` points at
            a local server that needs none.
        base_url: The API root; `OPENAI_BASE_URL` when None, else api.openai.com.
        timeout_s: Per-request timeout of the SDK client.
    """

    def __init__(
        self, *, api_key: str | None = None, base_url: str | None = None, timeout_s: float = 120.0
    ) -> None:
        api_key = api_key or os.environ.get(KEY_ENV)
        base_url = base_url or os.environ.get(BASE_URL_ENV) or None
        if not api_key:
            if base_url is None:
                raise LLMCallError(
                    f"openai: {KEY_ENV} is not set. Fix: check {KEY_ENV} in the worker's "
                    f"environment (or set {BASE_URL_ENV} for a local server that needs no key)",
                    kind="auth",
                    retryable=False,
                )
            api_key = _LOCAL_KEY
        # OpenAI's own API wants max_completion_tokens; compatible servers know max_tokens.
        self.token_param = "max_tokens" if base_url else "max_completion_tokens"
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout_s
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIProvider:
        """The provider of a worker: keys from its environment, timeout from its settings."""
        return cls(timeout_s=settings.llm_timeout_s)

    async def complete(
        self, request: LLMRequest, *, model: str, context: CallContext
    ) -> LLMResponse:
        """Run one chat completion (see `LLMProvider.complete`)."""
        params = build_params(request, model=model, token_param=self.token_param)
        try:
            if context.on_text is None:
                completion = await self._client.chat.completions.create(**params)
            else:
                completion = await self._streamed(params, context.on_text)
        except openai.OpenAIError as error:
            raise classify(error) from error
        except httpx.TransportError as error:  # the stream broke off mid-answer
            raise interrupted_stream(_NAME, f"{type(error).__name__}: {error}") from error
        return _response(completion, request)

    async def _streamed(
        self, params: dict[str, Any], on_text: Callable[[str], None]
    ) -> ChatCompletion:
        """The completion, streamed: each content delta goes to `on_text` as it arrives."""
        state: ChatCompletionStreamState[None] = ChatCompletionStreamState()
        seen = False
        stream = await self._client.chat.completions.create(
            **params, stream=True, stream_options={"include_usage": True}
        )
        async with stream:
            async for chunk in stream:
                state.handle_chunk(chunk)
                seen = True
                for choice in chunk.choices:
                    if choice.index == 0 and choice.delta.content:
                        on_text(choice.delta.content)
        if not seen:
            raise interrupted_stream(_NAME, "the stream carried no chunk")
        completion = state.current_completion_snapshot
        if completion.choices and completion.choices[0].finish_reason is None:
            raise interrupted_stream(_NAME, "the stream ended without a finish_reason")
        return completion


def _response(completion: ChatCompletion, request: LLMRequest) -> LLMResponse:
    """The `LLMResponse` of a completion, plain or assembled from a stream."""
    if not completion.choices:
        raise schema_error(_NAME, "the completion has no choices")
    choice = completion.choices[0]
    message = choice.message
    if message.refusal:
        raise schema_error(_NAME, f"the model refused: {message.refusal}")
    calls = [
        ToolCall(id=call.id, name=call.function.name, arguments=call.function.arguments or "{}")
        for call in message.tool_calls or []
        if call.type == "function"
    ]
    usage = completion.usage
    return LLMResponse(
        content=message.content,
        tool_calls=calls,
        usage=Usage(
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
        ),
        model=request.model,
        finish_reason=choice.finish_reason,
    )
