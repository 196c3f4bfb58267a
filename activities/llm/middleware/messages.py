"""The texts of a request that a provider sees, to scan or rewrite them in one place.

Those are each message's `content` and each tool call's `arguments` (JSON text: rewritten
value by value, so that the result stays valid JSON).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator
from typing import Any

from mahsm.contracts.llm import ChatMessage, LLMRequest, ToolCall

Rewrite = Callable[[str], str]
ALL_ROLES = frozenset({"system", "user", "assistant", "tool"})


def message_texts(request: LLMRequest, roles: Collection[str] = ALL_ROLES) -> Iterator[str]:
    """Every content and tool-call argument text of messages with one of `roles`."""
    for message in request.messages:
        if message.role not in roles:
            continue
        if message.content:
            yield message.content
        for call in message.tool_calls:
            yield call.arguments


def rewrite_messages(
    request: LLMRequest, rewrite: Rewrite, roles: Collection[str] = ALL_ROLES
) -> LLMRequest:
    """`request` with `rewrite` applied to the texts of `message_texts` (a copy if changed)."""
    messages: list[ChatMessage] = []
    changed = False
    for message in request.messages:
        new = _rewritten(message, rewrite) if message.role in roles else message
        changed = changed or new is not message
        messages.append(new)
    return request.model_copy(update={"messages": messages}) if changed else request


def _rewritten(message: ChatMessage, rewrite: Rewrite) -> ChatMessage:
    update: dict[str, Any] = {}
    if message.content:
        content = rewrite(message.content)
        if content != message.content:
            update["content"] = content
    calls: list[ToolCall] = []
    for call in message.tool_calls:
        arguments = rewrite_json(call.arguments, rewrite)
        same = arguments == call.arguments
        calls.append(call if same else call.model_copy(update={"arguments": arguments}))
    if any(new is not old for new, old in zip(calls, message.tool_calls, strict=True)):
        update["tool_calls"] = calls
    return message.model_copy(update=update) if update else message


def rewrite_json(text: str, rewrite: Rewrite) -> str:
    """`text` rewritten string by string (and number by number) when it is JSON, else whole.

    A number whose digits are rewritten becomes the rewritten string: a card number sent as
    a JSON number is still hidden.
    """
    try:
        value = json.loads(text)
    except ValueError:
        return rewrite(text)
    new = _rewrite_value(value, rewrite)
    return text if new == value else json.dumps(new, ensure_ascii=False)


def _rewrite_value(value: Any, rewrite: Rewrite) -> Any:
    if isinstance(value, str):
        return rewrite(value)
    if isinstance(value, dict):
        return {rewrite(k): _rewrite_value(v, rewrite) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite_value(v, rewrite) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        digits = str(value)
        new = rewrite(digits)
        return value if new == digits else new
    return value
