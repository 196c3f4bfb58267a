"""Live token streams end to end: worker -> Postgres NOTIFY -> API event hub -> SSE client.

Real Temporal, real Postgres, in-process workers, the API on uvicorn. The scripted provider
streams its answer in pieces over its latency; the openai provider streams through the real
SDK from a local server speaking OpenAI's SSE protocol, whose first attempt breaks off.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from mahsm.contracts.stream import TOKENS_EVENT, LiveText, TokenChunk
from tests.activities.llm.llm_fake_server import (
    FakeLLMServer,
    Reply,
    openai_completion,
    running_llm_server,
)
from tests.api.conftest import StackFactory, served, subtask
from tests.engine_harness import answer_rule

STORY = (
    "Once upon a time a fox found the key sk-streamkey0123456789abcdef under a stone, "
    "and it ran over the hills to tell the lazy dog all about it before dawn."
)
SCRIPTED = {"rules": [answer_rule("Write the story", STORY, latency_ms=1500)]}
DRAFT = "A first draft that will break off somewhere in the middle of its long sentence."
FINAL = "The second attempt, complete and final."


@dataclass
class Event:
    name: str
    data: dict[str, Any]


async def read_stream(base_url: str, task_id: str) -> list[Event]:
    """A whole `?tokens=true` stream, until it closes after `task_ended`."""
    events: list[Event] = []
    fields: dict[str, str] = {}
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=60) as client,
        client.stream("GET", f"/tasks/{task_id}/events", params={"tokens": "true"}) as response,
    ):
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line == "" and "event" in fields:
                events.append(Event(fields["event"], json.loads(fields.get("data", "{}"))))
                fields = {}
            elif line and not line.startswith(":"):
                key, _, value = line.partition(":")
                fields[key] = value.removeprefix(" ")
    return events


def token_chunks(events: list[Event]) -> list[TokenChunk]:
    return [TokenChunk.model_validate(e.data) for e in events if e.name == TOKENS_EVENT]


def _plan_task(description: str, **options: Any) -> dict[str, Any]:
    return {
        "description": description,
        "plan": {"subtasks": [subtask("write", description)]},
        "options": options,
    }


async def test_a_subscriber_sees_the_tokens_of_a_running_call_in_order_redacted(
    api_stack: StackFactory,
) -> None:
    async with api_stack(SCRIPTED) as stack, served(stack.app) as base_url:
        created = await stack.http.post("/tasks", json=_plan_task("Write the story"))
        task_id = created.json()["task_id"]
        events = await read_stream(base_url, task_id)
        state = await stack.wait_status(task_id, {"completed"})

    chunks = token_chunks(events)
    assert len(chunks) >= 3  # the answer arrived in pieces while the call ran
    assert {(c.task_id, c.subtask_id, c.attempt) for c in chunks} == {(task_id, "write", 1)}
    assert len({c.call for c in chunks}) == 1
    assert [c.seq for c in chunks] == list(range(len(chunks)))  # in order, none lost
    assert chunks[-1].done and not chunks[-1].failed
    # ... while the subtask was running: every chunk precedes its completion.
    names = [(e.name, e.data.get("subtask_id"), e.data.get("status")) for e in events]
    completed = names.index(("subtask_status", "write", "completed"))
    last_chunk = max(i for i, e in enumerate(events) if e.name == TOKENS_EVENT)
    assert last_chunk < completed
    live = LiveText()
    for chunk in chunks:
        live.add(chunk)
    streamed = live.text(chunks[0].call)
    assert "sk-streamkey" not in streamed and "[REDACTED]" in streamed
    assert streamed == STORY.replace("sk-streamkey0123456789abcdef", "[REDACTED]")
    output = next(s for s in state["subtask_results"] if s["id"] == "write")["output"]
    assert streamed == output  # the durable result says the same


@pytest.fixture
def openai_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLMServer]:
    with running_llm_server() as server:
        server.use_as_openai(monkeypatch)
        yield server


async def test_a_retried_attempt_replaces_the_partial_text_of_the_failed_one(
    api_stack: StackFactory, openai_server: FakeLLMServer
) -> None:
    openai_server.queue(
        Reply(200, openai_completion(content=DRAFT), cut_after=8, event_delay_s=0.1),
        Reply(200, openai_completion(content=FINAL), event_delay_s=0.1),
    )
    async with api_stack({"rules": []}) as stack, served(stack.app) as base_url:
        request = _plan_task("Write it twice", model="openai/gpt-4o-mini")
        task_id = (await stack.http.post("/tasks", json=request)).json()["task_id"]
        events = await read_stream(base_url, task_id)
        state = await stack.wait_status(task_id, {"completed"})

    chunks = token_chunks(events)
    first = [c for c in chunks if c.attempt == 1]
    second = [c for c in chunks if c.attempt == 2]
    assert first and second and len(first) + len(second) == len(chunks)
    assert first[-1].done and first[-1].failed  # the broken attempt said so
    assert DRAFT.startswith("".join(c.text for c in first))
    assert second[-1].done and not second[-1].failed
    assert len({c.call for c in chunks}) == 1  # one call, two attempts
    assert all(c.attempt == 2 for c in chunks[chunks.index(second[0]) :])
    live = LiveText()
    for chunk in chunks:
        live.add(chunk)
    call = live.calls[chunks[0].call]
    assert (call.text, call.attempt, call.gaps) == (FINAL, 2, 0)
    assert [r.body.get("stream") for r in openai_server.received] == [True, True]
    output = next(s for s in state["subtask_results"] if s["id"] == "write")["output"]
    assert output == FINAL
