"""Keeping workflow payloads far below Temporal's 2 MB limit, however many items they carry.

Single large values are already claim-checked by the activities that produce them; these
helpers bound the *sum* of many inline values.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from mahsm.activities.store import StoreActivities
    from mahsm.contracts.engine import BlobText
    from mahsm.contracts.llm import ChatMessage
    from mahsm.contracts.task import BlobRef
    from mahsm.workflows.retry import STORE_RETRY

# A subtask output larger than this travels by reference: 50 subtasks then stay under 2 MB
# in the `state` query, in a dependent's input and in the aggregation request.
OUTPUT_INLINE_BYTES = 32 * 1024
# An agent conversation whose inline contents pass this budget moves its largest ones out.
TRANSCRIPT_INLINE_BUDGET = 1024 * 1024


async def store_text(text: str) -> BlobRef:
    """Put `text` in the blob store; returns its claim check."""
    return await workflow.execute_activity_method(
        StoreActivities.blob_put_text,
        BlobText(text=text),
        start_to_close_timeout=timedelta(seconds=60),
        retry_policy=STORE_RETRY,
        summary="store large text",
    )


async def fit_messages(messages: list[ChatMessage], *, count_arguments: bool = False) -> None:
    """Move the largest inline texts to the blob store until the rest fits the budget.

    With `count_arguments` (every engine-v2 agent), tool-call arguments count and move too;
    agents recorded before it counted contents only, and keep doing so when replayed.
    """
    # (size, message index, tool call index or -1 for the content)
    parts = [(len((m.content or "").encode()), i, -1) for i, m in enumerate(messages)]
    if count_arguments:
        parts += [
            (len(call.arguments.encode()), i, k)
            for i, m in enumerate(messages)
            for k, call in enumerate(m.tool_calls)
        ]
    total = sum(size for size, _, _ in parts)
    if total <= TRANSCRIPT_INLINE_BUDGET or not workflow.patched("transcript-budget"):
        return
    for size, index, call_index in sorted(parts, key=lambda p: -p[0]):
        if total <= TRANSCRIPT_INLINE_BUDGET:
            break
        message = messages[index]
        if call_index >= 0:
            call = message.tool_calls[call_index]
            ref = await store_text(call.arguments)
            calls = list(message.tool_calls)
            calls[call_index] = call.model_copy(update={"arguments": "", "arguments_ref": ref})
            messages[index] = message.model_copy(update={"tool_calls": calls})
        else:
            if message.role == "system" or message.content is None:
                continue
            ref = await store_text(message.content)
            messages[index] = message.model_copy(update={"content": None, "content_ref": ref})
        total -= size
