"""`GET /tasks/{task_id}/events` over a real uvicorn server: SSE of a multi-subtask task."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from api.routes import events as events_route
from tests.api.conftest import TERMINAL, StackFactory, served, subtask
from tests.engine_harness import AGGREGATE, answer_rule, plan_rule

PIPELINE = {
    "rules": [
        {
            # Slow planning, so that the early client surely connects before the plan exists.
            **plan_rule(
                "pipeline",
                [
                    subtask("fetch", "Fetch the sales", cap="api_integration"),
                    subtask("analyze", "Analyze the sales", "fetch"),
                    subtask("chart", "Chart the sales", "fetch", cap="file_processing"),
                    subtask("report", "Report on the sales", "analyze", "chart"),
                ],
            ),
            "latency_ms": 1500,
        },
        answer_rule("Fetch the sales", "sales=[1, 2]", latency_ms=700),
        answer_rule("Analyze the sales", "trend up", latency_ms=2000),
        answer_rule("Chart the sales", "chart.png", latency_ms=400),
        answer_rule("Report on the sales", "report done", latency_ms=500),
        AGGREGATE,
    ]
}

BRANCHES = {
    "rules": [
        plan_rule(
            "branches",
            [
                subtask("bad", "Break on purpose"),
                subtask("after", "Run after bad", "bad"),
                subtask("good", "Work independently"),
            ],
        ),
        {"purpose": "agent_step", "match": "Break on purpose", "respond": {"error": 400}},
        answer_rule("Work independently", "fine", latency_ms=300),
        AGGREGATE,
    ]
}

HELD = {
    "rules": [
        plan_rule("held", [subtask("only", "The only step")]),
        answer_rule("The only step", "done"),
        AGGREGATE,
    ]
}


@dataclass
class Event:
    name: str
    data: dict[str, Any]
    id: str | None


@dataclass
class Stream:
    events: list[Event]
    pings: int
    content_type: str

    def names(self) -> list[str]:
        return [e.name for e in self.events]

    def subtask_events(self, subtask_id: str) -> list[str]:
        return [
            e.name
            for e in self.events
            if e.name.startswith("subtask_") and e.data["subtask"]["id"] == subtask_id
        ]

    def index(self, name: str, subtask_id: str) -> int:
        for i, e in enumerate(self.events):
            if e.name == name and e.data["subtask"]["id"] == subtask_id:
                return i
        raise AssertionError(f"no {name} for {subtask_id} in {self.names()}")


async def read_stream(base_url: str, task_id: str, **headers: str) -> Stream:
    """Read a whole SSE stream (it must close by itself) and parse its events."""
    events: list[Event] = []
    pings = 0
    fields: dict[str, str] = {}
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=60) as client,
        client.stream("GET", f"/tasks/{task_id}/events", headers=headers) as response,
    ):
        assert response.status_code == 200
        content_type = response.headers["content-type"]
        async for line in response.aiter_lines():
            if line.startswith(":"):
                pings += 1
            elif line == "":
                if "event" in fields:
                    events.append(
                        Event(
                            fields["event"], json.loads(fields.get("data", "{}")), fields.get("id")
                        )
                    )
                fields = {}
            else:
                key, _, value = line.partition(":")
                fields[key] = value.removeprefix(" ")
    return Stream(events=events, pings=pings, content_type=content_type)


@asynccontextmanager
async def serving(stack: Any) -> AsyncIterator[str]:
    async with served(stack.app) as base_url:
        yield base_url


async def test_stream_of_a_dag_from_the_start_and_for_a_late_client(
    api_stack: StackFactory,
) -> None:
    async with api_stack(PIPELINE) as stack, serving(stack) as base_url:
        response = await stack.http.post("/tasks", json={"description": "Run the pipeline"})
        task_id = response.json()["task_id"]
        early = asyncio.create_task(read_stream(base_url, task_id))

        # A second client connects once `fetch` has completed.
        await stack.wait_until(
            task_id, lambda b: b["subtask_results"] and b["subtask_results"][0]["output"]
        )
        late = await read_stream(base_url, task_id)
        first = await early
        # And a third after the end: the snapshot is final, task_ended follows at once.
        after = await read_stream(base_url, task_id)

    assert first.content_type.startswith("text/event-stream")
    names = first.names()
    assert names[0] == "snapshot" and names[-1] == "task_ended"
    assert first.events[0].data["task"]["plan"] is None
    assert names.index("plan_ready") < names.index("subtask_started")
    assert [int(e.id or 0) for e in first.events] == list(range(1, len(names) + 1))
    for sid in ("fetch", "analyze", "chart", "report"):
        assert first.subtask_events(sid) == ["subtask_started", "subtask_completed"]
    for dependent in ("analyze", "chart"):
        assert first.index("subtask_completed", "fetch") < first.index("subtask_started", dependent)
    for dependency in ("analyze", "chart"):
        assert first.index("subtask_completed", dependency) < first.index(
            "subtask_started", "report"
        )
    statuses = [e.data["status"] for e in first.events if e.name == "task_status"]
    assert statuses[-1] == "completed" and "running" in statuses
    completed = first.events[first.index("subtask_completed", "fetch")].data
    assert completed["task_id"] == task_id
    assert completed["subtask"]["output"] == "sales=[1, 2]" and completed["subtask"]["agent"]
    assert "input_tokens" in completed["usage"]
    ended = first.events[-1].data
    assert ended["task"]["status"] == "completed" and "report done" in ended["task"]["result"]
    assert [s["status"] for s in ended["subtask_results"]] == ["completed"] * 4

    # The late client starts from the current state and never sees fetch's earlier changes.
    snapshot = late.events[0]
    assert snapshot.name == "snapshot"
    assert snapshot.data["task"]["id"] == task_id and snapshot.data["task"]["plan"]
    assert snapshot.data["subtask_results"][0]["status"] == "completed"
    assert "plan_ready" not in late.names()
    assert late.subtask_events("fetch") == []
    # Changes after the snapshot arrive as events (a loaded machine may connect late enough
    # for report to be running already: then the snapshot shows it).
    report_before = snapshot.data["subtask_results"][3]["status"]
    expected = {"pending": ["subtask_started"], "running": []}[report_before]
    assert late.subtask_events("report") == [*expected, "subtask_completed"]
    assert late.names()[-1] == "task_ended"

    assert after.names() == ["snapshot", "task_ended"]
    assert after.events[0].data["task"]["status"] == "completed"


async def test_stream_reports_a_failed_branch_blocked_dependents_and_the_failure(
    api_stack: StackFactory,
) -> None:
    async with api_stack(BRANCHES) as stack, serving(stack) as base_url:
        response = await stack.http.post("/tasks", json={"description": "Run both branches"})
        stream = await read_stream(base_url, response.json()["task_id"])

    assert stream.subtask_events("bad") == ["subtask_started", "subtask_failed"]
    assert stream.subtask_events("after") == ["subtask_blocked"]
    assert stream.subtask_events("good") == ["subtask_started", "subtask_completed"]
    failed = stream.events[stream.index("subtask_failed", "bad")].data["subtask"]
    assert failed["error"]
    assert [e.data["status"] for e in stream.events if e.name == "task_status"][-1] == "failed"
    assert stream.events[-1].name == "task_ended"
    assert stream.events[-1].data["task"]["status"] == "failed"


async def test_stream_sends_keep_alive_pings_and_ends_on_cancel(
    api_stack: StackFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_route, "PING_S", 0.2)
    async with api_stack(HELD) as stack, serving(stack) as base_url:
        response = await stack.http.post(
            "/tasks",
            json={"description": "Wait for approval", "options": {"require_approval": True}},
        )
        task_id = response.json()["task_id"]
        await stack.wait_status(task_id, {"awaiting_approval"})
        reader = asyncio.create_task(read_stream(base_url, task_id))
        await asyncio.sleep(1.0)
        assert (await stack.http.post(f"/tasks/{task_id}/cancel")).status_code == 202
        stream = await reader
        await stack.wait_status(task_id, TERMINAL)

    assert stream.pings >= 2
    assert stream.events[0].name == "snapshot"
    assert stream.events[0].data["task"]["status"] == "awaiting_approval"
    assert stream.names()[-2:] == ["task_status", "task_ended"]
    assert stream.events[-1].data["task"]["status"] == "cancelled"
