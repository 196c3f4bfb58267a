"""Live token streams: the chunk of text one running LLM call publishes, and its assembly.

A worker publishes the text of a running `llm_complete` call as `TokenChunk`s on the Postgres
channel `TOKEN_CHANNEL` (never stored: not in a table, not in workflow history); the API's
event hub forwards them to the task's SSE streams that asked for them
(`GET /tasks/{id}/events?tokens=true`, event `llm_tokens`). The durable result of the call is
its `LLMResponse`, unchanged; a stream is a preview.

A call is named by `call` (`<workflow id>/<activity id>`); each Temporal attempt of it
streams afresh with its `attempt` number, so a client *replaces* the text of an older attempt
rather than appending to it. `LiveText` is that client-side assembly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, Field

TOKEN_CHANNEL = "mahsm_llm_tokens"
"""Postgres NOTIFY channel of token chunks; payload: `<task id>\\n<TokenChunk JSON>`."""
TOKENS_EVENT = "llm_tokens"
"""SSE event name of a token chunk."""


class TokenChunk(BaseModel):
    """A piece of the text a running LLM call has produced (secrets already redacted).

    Attributes:
        task_id: The task the call belongs to.
        subtask_id: Its subtask (None for planning and aggregation calls).
        workflow_id: The workflow that scheduled the call (the task's, or an agent child's).
        activity_id: The activity id of the call within that workflow.
        call: `<workflow_id>/<activity_id>`: the identity of the call across attempts.
        attempt: Temporal's attempt number; a higher one replaces the text of lower ones.
        seq: Position of this chunk within its attempt, from 0 (a gap: chunks were dropped).
        text: The text since the previous chunk of the attempt.
        done: The attempt has ended (its last chunk).
        failed: With `done`: the attempt failed (a retry may follow with `attempt + 1`).
    """

    task_id: str
    subtask_id: str | None = None
    workflow_id: str
    activity_id: str
    call: str
    attempt: int = Field(ge=1)
    seq: int = Field(ge=0)
    text: str = ""
    done: bool = False
    failed: bool = False


@dataclass
class CallText:
    """The text of one call as far as it has streamed: the newest attempt's only."""

    call: str
    subtask_id: str | None
    attempt: int
    text: str = ""
    next_seq: int = 0
    gaps: int = 0
    done: bool = False
    failed: bool = False


@dataclass
class LiveText:
    """Assembles token chunks into the text of each call, replacing retried attempts.

    Chunks of an attempt older than the newest one seen for the call are ignored; a chunk of
    a newer attempt discards the text gathered so far. Missing chunks (dropped under load)
    are counted in `CallText.gaps`.
    """

    calls: dict[str, CallText] = field(default_factory=dict)

    def add(self, chunk: TokenChunk) -> CallText | None:
        """Take one chunk; returns the call's text, or None when the chunk was stale."""
        current = self.calls.get(chunk.call)
        if current is None or chunk.attempt > current.attempt:
            current = CallText(call=chunk.call, subtask_id=chunk.subtask_id, attempt=chunk.attempt)
            self.calls[chunk.call] = current
        elif chunk.attempt < current.attempt or chunk.seq < current.next_seq:
            return None
        if chunk.seq > current.next_seq:
            current.gaps += chunk.seq - current.next_seq
        current.text += chunk.text
        current.next_seq = chunk.seq + 1
        current.done = chunk.done
        current.failed = chunk.failed
        return current

    def text(self, call: str) -> str:
        """The text of `call` so far ("" when nothing has arrived)."""
        found = self.calls.get(call)
        return found.text if found is not None else ""

    def running(self) -> list[CallText]:
        """Calls whose newest attempt has not ended, oldest first."""
        return [c for c in self.calls.values() if not c.done]
