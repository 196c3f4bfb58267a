"""Claim checks of the `llm_complete` activity: large texts travel as blob references.

Going in, every reference in the request's messages (`content_ref`, and `arguments_ref` of
assistant tool calls) is resolved before the provider sees it. Coming out, content and
tool-call arguments over the claim-check threshold are stored and replaced by references,
and the rest is kept under `RESPONSE_INLINE_BUDGET`, so the result always fits Temporal's
2 MB payload limit: a completed (and billed) call is never repeated because its result was
too large to record.
"""

from __future__ import annotations

from mahsm.activities.blobs import BlobStore
from mahsm.activities.llm.errors import LLMCallError
from mahsm.contracts.llm import ChatMessage, LLMRequest, LLMResponse, ToolCall
from mahsm.contracts.task import BlobRef

RESPONSE_INLINE_BUDGET = 1024 * 1024
"""At most this many bytes of content and arguments stay inline in one response."""
NO_BLOBS_FIX = "Fix: build LLMActivities with blobs=BlobStore(pool) on workers that run LLM calls"


def _size(text: str | None) -> int:
    return len(text.encode("utf-8")) if text else 0


def has_refs(request: LLMRequest) -> bool:
    """True when some message of `request` carries a blob reference."""
    return any(
        m.content_ref is not None or any(c.arguments_ref is not None for c in m.tool_calls)
        for m in request.messages
    )


async def resolve_refs(request: LLMRequest, blobs: BlobStore | None) -> LLMRequest:
    """`request` with every blob reference of its messages replaced by the text it names.

    Raises:
        LLMCallError: Non-retryable, when there is no blob store or a blob is missing.
    """
    if not has_refs(request):
        return request
    if blobs is None:
        raise LLMCallError(
            f"a message carries a blob reference but this worker has no blob store. {NO_BLOBS_FIX}",
            kind="bad_request",
            retryable=False,
        )
    messages: list[ChatMessage] = []
    for message in request.messages:
        update: dict[str, object] = {}
        if message.content_ref is not None:
            update.update(content=await _text(blobs, message.content_ref), content_ref=None)
        if any(call.arguments_ref is not None for call in message.tool_calls):
            update["tool_calls"] = [await _resolved_call(blobs, c) for c in message.tool_calls]
        messages.append(message.model_copy(update=update) if update else message)
    return request.model_copy(update={"messages": messages})


async def _resolved_call(blobs: BlobStore, call: ToolCall) -> ToolCall:
    if call.arguments_ref is None:
        return call
    arguments = await _text(blobs, call.arguments_ref)
    return call.model_copy(update={"arguments": arguments, "arguments_ref": None})


async def _text(blobs: BlobStore, ref: BlobRef) -> str:
    try:
        return await blobs.get_text(ref)
    except LookupError as error:
        raise LLMCallError(
            f"{error}; the message's claim check points at nothing. Fix: store the blob "
            "before passing its reference",
            kind="bad_request",
            retryable=False,
        ) from error


async def offload_response(
    response: LLMResponse, blobs: BlobStore | None, *, threshold_bytes: int
) -> LLMResponse:
    """`response` with large texts moved to the blob store (see the module docstring).

    Texts over `threshold_bytes` move; then the largest remaining ones until the inline total
    is within `RESPONSE_INLINE_BUDGET`. Without a blob store, the response stays inline if it
    fits the budget and is refused (non-retryably) otherwise.

    Raises:
        LLMCallError: Non-retryable, when the response is too large and there is no store.
    """
    # (size, index): index -1 is the content, i >= 0 the arguments of tool call i.
    sizes = [(_size(response.content), -1)]
    sizes += [(_size(call.arguments), i) for i, call in enumerate(response.tool_calls)]
    total = sum(size for size, _ in sizes)
    if all(size <= threshold_bytes for size, _ in sizes) and total <= RESPONSE_INLINE_BUDGET:
        return response
    if blobs is None:
        if total <= RESPONSE_INLINE_BUDGET:
            return response
        raise LLMCallError(
            f"the answer holds {total} bytes of text, too large to return inline, and this "
            f"worker has no blob store. {NO_BLOBS_FIX}",
            kind="bad_request",
            retryable=False,
        )
    content, content_ref = response.content, response.content_ref
    calls = list(response.tool_calls)
    for size, index in sorted(sizes, reverse=True):
        if size <= threshold_bytes and total <= RESPONSE_INLINE_BUDGET:
            break
        if size == 0:
            continue
        if index < 0:
            content_ref = await blobs.put((content or "").encode("utf-8"))
            content = None
        else:
            ref = await blobs.put(calls[index].arguments.encode("utf-8"))
            calls[index] = calls[index].model_copy(update={"arguments": "", "arguments_ref": ref})
        total -= size
    return response.model_copy(
        update={"content": content, "content_ref": content_ref, "tool_calls": calls}
    )
