"""Keeping workflow payloads far below Temporal's 2 MB limit, however many items they carry.

Single large values are already claim-checked by the activities that produce them; these
helpers bound the *sum* of many inline values.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.store import StoreActivities
    from mahsm.contracts.engine import BlobText
    from mahsm.contracts.llm import ChatMessage
    from mahsm.contracts.task import BlobRef
    from workflows.retry import STORE_RETRY

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


async def fit_messages(messages: list[ChatMessage]) -> None:
    """Move the largest inline contents to the blob store until the rest fits the budget."""
    sizes = {i: len((m.content or "").encode()) for i, m in enumerate(messages)}
    total = sum(sizes.values())
    if total <= TRANSCRIPT_INLINE_BUDGET or not workflow.patched("transcript-budget"):
        return
    for index in sorted(sizes, key=lambda i: -sizes[i]):
        if total <= TRANSCRIPT_INLINE_BUDGET:
            break
        message = messages[index]
        if message.role == "system" or message.content is None:
            continue
        ref = await store_text(message.content)
        messages[index] = message.model_copy(update={"content": None, "content_ref": ref})
        total -= sizes[index]
