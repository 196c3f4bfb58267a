"""`GET /tasks/{task_id}/events` over a real uvicorn server: the task event log, pushed.

Real Temporal, real Postgres, in-process workers. The stream must send exactly the rows of
`task_events`, in order, with id = seq, resume after `Last-Event-ID`, cap streams per user,
and never ask the workflow's `state` query (counted by a Temporal client interceptor).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from temporalio import client as temporal
from temporalio.testing import WorkflowEnvironment

import mahsm.api.deps
from mahsm.api.main import create_app
from mahsm.api.routes import events as events_route
from mahsm.settings import Settings
from tests.api.conftest import StackFactory, api_settings, served, subtask
from tests.engine_harness import AGGREGATE, Engine, answer_rule, plan_rule

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
APPROVAL = {"description": "Wait for approval", "options": {"require_approval": True}}


@dataclass
class Event:
    name: str
    data: dict[str, Any]
    id: str | None


@dataclass
class Stream:
    status: int
    events: list[Event]
    pings: int
    content_type: str

    def names(self) -> list[str]:
        return [e.name for e in self.events]

    def log(self) -> list[tuple[int, str, str | None, str | None]]:
        """The log rows the stream carried: (seq, kind, subtask_id, status)."""
        return [
            (int(e.id or -1), e.name, e.data["subtask_id"], e.data["status"])
            for e in self.events
            if e.name != "task_ended"
        ]


async def read_stream(base_url: str, task_id: str, **headers: str) -> Stream:
    """Read a whole SSE stream (it must close by itself) and parse its events."""
    events: list[Event] = []
    pings = 0
    fields: dict[str, str] = {}
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=60) as client,
        client.stream("GET", f"/tasks/{task_id}/events", headers=headers) as response,
    ):
        async for line in response.aiter_lines():
            if line.startswith(":"):
                pings += 1
            elif line == "":
                if "event" in fields:
                    data = json.loads(fields.get("data", "{}"))
                    events.append(Event(fields["event"], data, fields.get("id")))
                fields = {}
            else:
                key, _, value = line.partition(":")
                fields[key] = value.removeprefix(" ")
    content_type = response.headers.get("content-type", "")
    return Stream(response.status_code, events, pings, content_type)


async def log_rows(engine: Engine, task_id: str) -> list[tuple[int, str, str | None, str | None]]:
    return [
        (r["seq"], r["kind"], r["subtask_id"], r["status"]) for r in await engine.events(task_id)
    ]


class CountQueries(temporal.Interceptor):
    """Counts the workflow queries a Temporal client sends."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    def intercept_client(self, next: temporal.OutboundInterceptor) -> temporal.OutboundInterceptor:
        counter = self

        class Outbound(temporal.OutboundInterceptor):
            async def query_workflow(self, input: temporal.QueryWorkflowInput) -> Any:
                counter.queries.append(input.query)
                return await super().query_workflow(input)

        return Outbound(next)


@pytest.fixture
def api_queries(monkeypatch: pytest.MonkeyPatch) -> CountQueries:
    """Every workflow query the API's Temporal client sends from now on."""
    counter = CountQueries()
    connect = mahsm.api.deps.connect

    async def counting_connect(settings: Settings, **kwargs: Any) -> temporal.Client:
        client = await connect(settings, **kwargs)
        return temporal.Client(**{**client.config(), "interceptors": [counter]})

    monkeypatch.setattr(mahsm.api.deps, "connect", counting_connect)
    return counter


async def wait_subtask_done(engine: Engine, task_id: str, subtask_id: str) -> None:
    for _ in range(300):
        row = (await engine.subtask_rows(task_id)).get(subtask_id)
        if row is not None and row["status"] == "completed":
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{subtask_id} never completed")


async def test_a_dag_streams_its_whole_log_in_order_and_resumes_after_last_event_id(
    api_stack: StackFactory, api_queries: CountQueries
) -> None:
    async with api_stack(PIPELINE) as stack, served(stack.app) as base_url:
        response = await stack.http.post("/tasks", json={"description": "Run the pipeline"})
        task_id = response.json()["task_id"]
        early = asyncio.create_task(read_stream(base_url, task_id))
        # A client reconnecting mid-task with the id of the third event it saw.
        await wait_subtask_done(stack.engine, task_id, "fetch")
        resumed = await read_stream(base_url, task_id, **{"Last-Event-ID": "3"})
        first = await early
        await stack.wait_closed(task_id)
        rows = await log_rows(stack.engine, task_id)
        # After the end: a resume gets the rest, a resume from the last event gets 204.
        tail = await read_stream(base_url, task_id, **{"Last-Event-ID": str(len(rows) - 2)})
        done = await read_stream(base_url, task_id, **{"Last-Event-ID": str(len(rows))})
        assert api_queries.queries == []  # streams never asked the workflow anything

    assert first.status == 200 and first.content_type.startswith("text/event-stream")
    assert first.log() == rows  # every row, in seq order, named by kind, id = seq
    assert [seq for seq, *_ in rows] == list(range(1, len(rows) + 1))
    assert set(first.names()) == {"task_status", "plan_ready", "subtask_status", "task_ended"}
    statuses = [e.data["status"] for e in first.events if e.name == "task_status"]
    assert statuses[-1] == "completed" and "running" in statuses
    for sid in ("fetch", "analyze", "chart", "report"):
        assert [s for _, kind, sub, s in rows if sub == sid][-1] == "completed"
    assert first.events[-1].name == "task_ended" and first.events[-1].id is None
    assert first.events[-1].data == {"task_id": task_id, "status": "completed", "error": None}
    plan = first.events[first.names().index("plan_ready")].data
    assert plan["task_id"] == task_id and plan["message"] == "4 subtasks"

    assert resumed.log() == rows[3:]
    assert resumed.names()[-1] == "task_ended"
    assert tail.log() == rows[-2:] and tail.names()[-1] == "task_ended"
    assert done.status == 204 and done.events == []


async def test_a_failed_branch_streams_its_log_and_ends_failed(api_stack: StackFactory) -> None:
    async with api_stack(BRANCHES) as stack, served(stack.app) as base_url:
        response = await stack.http.post("/tasks", json={"description": "Run both branches"})
        task_id = response.json()["task_id"]
        stream = await read_stream(base_url, task_id)
        await stack.wait_closed(task_id)
        rows = await log_rows(stack.engine, task_id)

    assert stream.log() == rows
    last = {sub: status for _, kind, sub, status in rows if kind == "subtask_status"}
    assert last == {"bad": "failed", "after": "blocked", "good": "completed"}
    assert stream.events[-1].name == "task_ended"
    assert stream.events[-1].data["status"] == "failed" and stream.events[-1].data["error"]


async def test_streams_send_pings_and_end_on_cancel_without_the_workflow_being_queried(
    api_stack: StackFactory, api_queries: CountQueries, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_route, "PING_S", 0.2)
    async with api_stack(HELD) as stack, served(stack.app) as base_url:
        task_id = (await stack.http.post("/tasks", json=APPROVAL)).json()["task_id"]
        await stack.wait_row(task_id, "awaiting_approval")
        api_queries.queries.clear()
        readers = [asyncio.create_task(read_stream(base_url, task_id)) for _ in range(3)]
        await asyncio.sleep(1.0)
        assert not any(r.done() for r in readers)
        assert api_queries.queries == []
        assert (await stack.http.post(f"/tasks/{task_id}/cancel")).status_code == 202
        streams = await asyncio.gather(*readers)
        await stack.wait_closed(task_id)
        rows = await log_rows(stack.engine, task_id)

    for stream in streams:
        assert stream.pings >= 2
        assert stream.log() == rows
        assert rows[-1][1:] == ("task_status", None, "cancelled")
        assert stream.names()[-2:] == ["task_status", "task_ended"]
        assert stream.events[-1].data["status"] == "cancelled"


async def test_a_stream_ends_when_its_workflow_closes_without_logging_the_end(
    api_stack: StackFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_route, "IDLE_CHECK_S", 0.5)
    async with api_stack(HELD) as stack, served(stack.app) as base_url:
        task_id = (await stack.http.post("/tasks", json=APPROVAL)).json()["task_id"]
        await stack.wait_row(task_id, "awaiting_approval")
        reader = asyncio.create_task(read_stream(base_url, task_id))
        await asyncio.sleep(1.5)
        assert not reader.done()  # idle checks of a running workflow keep the stream open
        await stack.engine.client.get_workflow_handle(task_id).terminate("operator")
        stream = await asyncio.wait_for(reader, 30)
        rows = await log_rows(stack.engine, task_id)

    assert stream.log() == rows
    assert stream.events[-1].name == "task_ended"
    assert stream.events[-1].data["status"] == "failed"
    assert "terminated" in stream.events[-1].data["error"]


@asynccontextmanager
async def open_stream(
    base_url: str, task_id: str, key: str
) -> AsyncIterator[tuple[httpx.Response, bytes]]:
    """An open stream (status read, body not) and, for an error, its body."""
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30) as client,
        client.stream(
            "GET", f"/tasks/{task_id}/events", headers={"Authorization": f"Bearer {key}"}
        ) as response,
    ):
        body = await response.aread() if response.status_code != 200 else b""
        yield response, body


async def test_open_streams_are_capped_per_user_with_429(
    api_stack: StackFactory, temporal_env: WorkflowEnvironment, database_url: str
) -> None:
    keys = {"ka": "alice", "kb": "bob"}
    async with api_stack(HELD, api_keys=keys, headers={"Authorization": "Bearer ka"}) as stack:
        settings = api_settings(
            temporal_env,
            database_url,
            queue_prefix=stack.engine.settings.queue_prefix,
            api_keys=keys,
            sse_max_streams_per_user=2,
        )
        capped = create_app(settings)
        task_id = (await stack.http.post("/tasks", json=APPROVAL)).json()["task_id"]
        await stack.wait_row(task_id, "awaiting_approval")
        async with served(capped) as base_url, AsyncExitStack() as held:
            alice = [await held.enter_async_context(open_stream(base_url, task_id, "ka"))]
            async with open_stream(base_url, task_id, "ka") as (second, _):
                assert alice[0][0].status_code == 200 and second.status_code == 200
                async with open_stream(base_url, task_id, "ka") as (third, body):
                    assert third.status_code == 429
                    error = json.loads(body)
                    assert error["code"] == "too_many_streams"
                    assert "MAHSM_SSE_MAX_STREAMS_PER_USER" in error["message"]
                    assert error["details"] == {"open_streams": 2, "limit": 2}
                # Bob has his own allowance, and may not see Alice's task.
                async with open_stream(base_url, task_id, "kb") as (bobs, _):
                    assert bobs.status_code == 404
            # Alice closed one stream: its slot is free again once the server notices.
            for _ in range(50):
                async with open_stream(base_url, task_id, "ka") as (again, _):
                    if again.status_code == 200:
                        break
                await asyncio.sleep(0.1)
            assert again.status_code == 200
        with contextlib.suppress(httpx.HTTPError):
            await stack.http.post(f"/tasks/{task_id}/cancel")
        await stack.wait_closed(task_id)


async def test_bad_last_event_id_and_unknown_task(api_stack: StackFactory) -> None:
    async with api_stack(HELD) as stack:
        bad = await stack.http.get(
            "/tasks/task-nope/events", headers={"Last-Event-ID": "not-a-number"}
        )
        missing = await stack.http.get("/tasks/task-nope/events")
    assert bad.status_code == 422 and "last-event-id" in bad.json()["message"].lower()
    assert missing.status_code == 404 and missing.json()["code"] == "task_not_found"
