"""`GET /tasks/{task_id}/events`: Server-Sent Events of a task's event log, pushed from Postgres.

The stream sends the rows of `task_events` (see `api/task_events.py`) in `seq` order, each as
one event named by its kind with id = seq, then `task_ended`. New rows are pushed by the
process's `EventHub` (Postgres LISTEN/NOTIFY); no stream ever queries the workflow. With
`?tokens=true` the stream also carries `llm_tokens` events (no id: never replayed), the live
text of running LLM calls (`mahsm.contracts.stream`).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from mahsm.api.auth import Caller, CallerDep, authenticate
from mahsm.api.deps import ApiError, Backends, BackendsDep, BackendUnavailable, SettingsDep
from mahsm.api.event_hub import EventHub, StreamSlot
from mahsm.api.read_model import DATABASE_ERRORS, guarded
from mahsm.api.routes.tasks import TaskId, error_responses
from mahsm.api.schemas import ErrorBody
from mahsm.api.stream_subscription import LiveTokens, LogUnavailable
from mahsm.api.task_access import RPC_TIMEOUT, task_not_found, unstarted_state
from mahsm.api.task_events import (
    ERROR,
    TASK_ENDED,
    LogEvent,
    TaskEnd,
    TaskHead,
    read_head,
    read_log,
)
from mahsm.api.text_guard import reject_unstorable_params

log = structlog.get_logger(__name__)

# A stream with nothing to send for this long sends a comment, so that proxies keep it open.
PING_S = 15.0
# After this long without events, a stream checks that the task's workflow still runs: one
# closed without logging its end (terminated by an operator) would otherwise never end it.
IDLE_CHECK_S = 60.0
# What a workflow closed by Temporal itself (not by MAHSM's code) means for the task.
_CLOSED_STATUS = {
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.TIMED_OUT: "timed_out",
}


@asynccontextmanager
async def _hub_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One `EventHub` per app, connected on first use, closed at shutdown."""
    url = app.state.settings.database_url
    hub = EventHub(url.get_secret_value() if url is not None else None)
    app.state.event_hub = hub
    try:
        yield
    finally:
        await hub.close()


router = APIRouter(
    tags=["tasks"],
    dependencies=[Depends(authenticate), Depends(reject_unstorable_params)],
    lifespan=_hub_lifespan,
)


async def get_hub(request: Request) -> EventHub:
    """The app's `EventHub`."""
    hub: EventHub = request.app.state.event_hub
    return hub


HubDep = Annotated[EventHub, Depends(get_hub)]
LastEventId = Annotated[
    int | None,
    Header(
        alias="Last-Event-ID",
        ge=0,
        le=2**62,
        description="Resume after this event id (sent by EventSource when it reconnects):"
        " only events with a greater id are sent.",
    ),
]
WithTokens = Annotated[
    bool,
    Query(
        description="Also send `llm_tokens` events: the live text of running LLM calls, each"
        " chunk tagged with its call and attempt (a higher attempt replaces the text of a lower"
        " one). Not stored, not replayed; see docs/api.md.",
    ),
]


_PING = ServerSentEvent(comment="ping").encode()


def _end(end: TaskEnd) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps(end.payload()), event=TASK_ENDED)


async def _head(hub: EventHub, backends: Backends, task_id: str, caller: Caller) -> TaskHead:
    """The task's owner and end; 404 when the caller may not see it or it does not exist.

    The row appears with the workflow's first write; before that the owner is read from the
    workflow's start event (Temporal's history, not a query: no worker is involved).
    """
    pool = await hub.start()
    head = await guarded(lambda: read_head(pool, task_id))
    if head is None:
        state = await unstarted_state(backends, task_id)
        if state is None:
            raise task_not_found(task_id)
        head = TaskHead(user_id=state.user_id, ended=None)
    if not caller.may_see(head.user_id):
        raise task_not_found(task_id)
    return head


async def _ended_stream(
    backlog: list[LogEvent], end: TaskEnd
) -> AsyncIterator[ServerSentEvent | bytes]:
    for event in backlog:
        yield event.sse
    yield _end(end)


async def _closed_end(backends: Backends, hub: EventHub, task_id: str) -> TaskEnd | None:
    """How the task ended if its workflow has closed; None while it runs or cannot be told.

    Temporal is asked to describe the workflow (its server answers; no worker, no query).
    """
    try:
        handle = (await backends.temporal()).get_workflow_handle(task_id)
        status = (await handle.describe(rpc_timeout=RPC_TIMEOUT)).status
    except BackendUnavailable:
        return None
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            return None
        status = None  # removed after its retention period
    if status in (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.CONTINUED_AS_NEW):
        return None
    try:
        head = await read_head(hub.read_pool, task_id)
    except DATABASE_ERRORS:
        return None
    if head is not None and head.ended is not None:
        return head.ended
    how = status.name.lower() if status is not None else "removed"
    return TaskEnd(
        task_id=task_id,
        status=_CLOSED_STATUS.get(status, "failed") if status is not None else "failed",
        error=f"the task's workflow closed ({how}) without recording its end",
    )


async def _live_stream(
    hub: EventHub, backends: Backends, task_id: str, after: int, slot: StreamSlot, tokens: bool
) -> AsyncIterator[ServerSentEvent | bytes]:
    """The log from `seq > after` as it grows, until the event that ends the task.

    The keep-alive is this loop's own: a comment after `PING_S` without anything sent, not a
    ping task per stream on a fixed beat. The first one comes at a random point of the
    interval, so that streams opened together do not all ping (and wake) at the same moment.
    """
    loop = asyncio.get_running_loop()
    sent = after
    now = loop.time()
    ping_at = now + PING_S * random.uniform(0.5, 1.0)
    check_at = now + IDLE_CHECK_S
    try:
        async with hub.subscribe(task_id, after, tokens=tokens) as subscription:
            while True:
                try:
                    # A timeout, not wait_for: no task per wait.
                    async with asyncio.timeout_at(min(ping_at, check_at)):
                        item = await subscription.next_item()
                except TimeoutError:
                    now = loop.time()
                    if now >= check_at:
                        end = await _closed_end(backends, hub, task_id)
                        if end is not None:
                            for event in await _whole_log(hub, task_id, sent):
                                yield event.sse
                            yield _end(end)
                            return
                        check_at = loop.time() + IDLE_CHECK_S
                    if now >= ping_at:
                        yield _PING
                        ping_at = loop.time() + PING_S
                    continue
                now = loop.time()
                ping_at = now + PING_S
                check_at = now + IDLE_CHECK_S
                if isinstance(item, LiveTokens):
                    yield item.sse
                    continue
                for event in item:
                    yield event.sse
                    sent = event.seq
                    if event.ends_task:
                        yield _end(TaskEnd.of(event))
                        return
    except (LogUnavailable, BackendUnavailable) as error:
        reason = error.message if isinstance(error, BackendUnavailable) else str(error)
        message = f"the event log could not be read ({reason}); reconnect later to resume"
        yield ServerSentEvent(
            data=json.dumps({"code": "database_unavailable", "message": message}), event=ERROR
        )
    finally:
        slot.release()


async def _whole_log(hub: EventHub, task_id: str, after: int) -> list[LogEvent]:
    async def read_all() -> list[LogEvent]:
        events: list[LogEvent] = []
        while batch := await read_log(hub.read_pool, task_id, events[-1].seq if events else after):
            events += batch
        return events

    return await guarded(read_all)


@router.get(
    "/tasks/{task_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "An SSE stream of the task's event log: `task_status`, `plan_ready`,"
            " `subtask_status`, `note` (id = seq), then `task_ended`; with `tokens=true` also"
            " `llm_tokens` (no id).",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        204: {"description": "The task has ended and Last-Event-ID is its last event"},
        429: {"model": ErrorBody, "description": "Too many open event streams for this user"},
        **error_responses(401, 404, 422, 503),
    },
)
async def task_events(
    task_id: TaskId,
    caller: CallerDep,
    backends: BackendsDep,
    settings: SettingsDep,
    hub: HubDep,
    last_event_id: LastEventId = None,
    tokens: WithTokens = False,
) -> Response:
    """Follow a task: every event of its log in order (after `Last-Event-ID`), then `task_ended`."""
    head = await _head(hub, backends, task_id, caller)
    after = last_event_id or 0
    if head.ended is not None:  # nothing more will be written: send what is left and close
        backlog = await _whole_log(hub, task_id, after)
        if not backlog and after > 0:
            return Response(status_code=204)  # tells EventSource to stop reconnecting
        return EventSourceResponse(_ended_stream(backlog, head.ended), ping=0)  # ends soon
    limit = settings.sse_max_streams_per_user
    slot = hub.try_open_stream(caller.user, limit)
    if slot is None:
        raise ApiError(
            429,
            code="too_many_streams",
            message=f"You have {limit} event streams open, the most allowed per user"
            " (MAHSM_SSE_MAX_STREAMS_PER_USER); close one before opening another.",
            details={"open_streams": hub.open_streams(caller.user), "limit": limit},
        )
    return EventSourceResponse(
        _live_stream(hub, backends, task_id, after, slot, tokens),
        ping=0,  # the stream pings by itself (`_live_stream`)
        background=BackgroundTask(slot.release),
    )
