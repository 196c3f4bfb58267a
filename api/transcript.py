"""A subtask's transcript, read back from the Temporal history of the agent that worked it.

Agents keep their conversation in workflow state, not in Postgres: an inline agent's calls are
activities of the task's workflow (ids `<subtask>/llm-<n>`, `<subtask>/tool-<n>-<k>`), and an
agent moved to a child has them in the child `<task>.<subtask>`. Each `llm_complete` input
carries the whole conversation so far, so the last one plus its answer is the transcript;
failed calls are listed as errors. Reading history asks the Temporal server only (no worker).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from mahsm.api.dashboard_schemas import TranscriptEntry, TranscriptView
from mahsm.contracts.llm import ChatMessage, LLMRequest, LLMResponse

# A subtask's agent never makes more calls than this is worth reading for one page.
_MAX_HISTORY_EVENTS = 50_000


async def _agent_events(client: Client, workflow_id: str, prefix: str) -> list[HistoryEvent]:
    events: list[HistoryEvent] = []
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        events.append(event)
        if len(events) >= _MAX_HISTORY_EVENTS:
            break
    scheduled = {
        e.event_id
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_id.startswith(prefix)
    }
    return [e for e in events if e.event_id in scheduled or _scheduled_id(e) in scheduled]


def _scheduled_id(event: HistoryEvent) -> int | None:
    for field in (
        "activity_task_completed_event_attributes",
        "activity_task_failed_event_attributes",
        "activity_task_timed_out_event_attributes",
    ):
        if event.HasField(field):
            scheduled: int = getattr(event, field).scheduled_event_id
            return scheduled
    return None


BlobReader = Callable[[str], Awaitable[str | None]]


async def _entry(message: ChatMessage, blobs: BlobReader) -> TranscriptEntry:
    content = message.content
    if content is None and message.content_ref is not None:
        ref = message.content_ref
        content = await blobs(ref.blob_id) or f"[stored as blob {ref.blob_id}, {ref.size_bytes} B]"
    return TranscriptEntry(
        role=message.role,
        content=content,
        tool_calls=[
            {"id": call.id, "name": call.name, "arguments": call.arguments}
            for call in message.tool_calls
        ],
        tool_call_id=message.tool_call_id,
        name=message.name,
        is_error=message.is_error,
    )


async def _decode(client: Client, payloads: Any, kind: type[Any]) -> Any:
    [value] = await client.data_converter.decode(list(payloads), [kind])
    return value


async def _transcript_of(
    client: Client, events: list[HistoryEvent], blobs: BlobReader
) -> list[TranscriptEntry]:
    """The conversation of the last `llm_complete` of `events`, its answer and any failures."""
    last_request: LLMRequest | None = None
    last_scheduled = -1
    errors: list[TranscriptEntry] = []
    answers: dict[int, HistoryEvent] = {}
    for event in events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            attributes = event.activity_task_scheduled_event_attributes
            if attributes.activity_type.name == "llm_complete":
                last_request = await _decode(client, attributes.input.payloads, LLMRequest)
                last_scheduled = event.event_id
        elif event.HasField("activity_task_completed_event_attributes"):
            answers[event.activity_task_completed_event_attributes.scheduled_event_id] = event
        elif event.HasField("activity_task_failed_event_attributes"):
            failure = event.activity_task_failed_event_attributes.failure
            errors.append(TranscriptEntry(role="error", content=failure.message, is_error=True))
        elif event.HasField("activity_task_timed_out_event_attributes"):
            errors.append(TranscriptEntry(role="error", content="call timed out", is_error=True))
    if last_request is None:
        return errors
    entries = [await _entry(m, blobs) for m in last_request.messages]
    answer = answers.get(last_scheduled)
    if answer is not None:
        payloads = answer.activity_task_completed_event_attributes.result.payloads
        response: LLMResponse = await _decode(client, payloads, LLMResponse)
        entries.append(
            await _entry(
                ChatMessage(
                    role="assistant",
                    content=response.content,
                    content_ref=response.content_ref,
                    tool_calls=response.tool_calls,
                ),
                blobs,
            )
        )
    return entries + errors


async def read_transcript(
    client: Client, task_id: str, subtask_id: str, *, blobs: BlobReader
) -> TranscriptView:
    """The transcript of `subtask_id` of `task_id`; empty when its agent made no call yet.

    `blobs` reads a large content stored as a claim check (None when it is gone).

    Raises:
        RPCError: Temporal could not answer (other than "no such workflow").
    """
    try:
        events = await _agent_events(client, task_id, f"{subtask_id}/")
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        return TranscriptView(task_id=task_id, subtask_id=subtask_id, available=False, entries=[])
    try:
        child = await _agent_events(client, f"{task_id}.{subtask_id}", "")
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        child = []
    entries = await _transcript_of(client, child or events, blobs)
    return TranscriptView(task_id=task_id, subtask_id=subtask_id, available=True, entries=entries)
