"""`GET /tasks/{task_id}/events`: Server-Sent Events of a task's state changes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import structlog
from fastapi import APIRouter, Depends
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.auth import Caller, CallerDep, authenticate
from api.deps import ApiError, Backends, BackendsDep
from api.read_model import TaskSnapshot
from api.routes.tasks import TaskId, error_responses
from api.task_access import find_snapshot
from api.task_events import ERROR, SNAPSHOT, TASK_ENDED, Event, changes, detail_event
from api.text_guard import reject_unstorable_params

log = structlog.get_logger(__name__)

POLL_S = 0.25
PING_S = 15.0
# How long the stream keeps retrying while neither Temporal nor Postgres answers.
GIVE_UP_S = 60.0

router = APIRouter(
    tags=["tasks"], dependencies=[Depends(authenticate), Depends(reject_unstorable_params)]
)


class _Stream:
    """Polls one task and yields its events until it ends or cannot be read any more."""

    def __init__(self, backends: Backends, task_id: str, caller: Caller) -> None:
        self.backends = backends
        self.task_id = task_id
        self.caller = caller
        self.seq = 0

    def _sse(self, event: Event) -> ServerSentEvent:
        self.seq += 1
        name, data = event
        return ServerSentEvent(data=json.dumps(data), event=name, id=str(self.seq))

    async def _next(self) -> TaskSnapshot | Event:
        """The task's next view, or an `error` event once it cannot be read for too long."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GIVE_UP_S
        while True:
            try:
                return await find_snapshot(
                    self.backends, self.task_id, self.caller, live_first=True
                )
            except ApiError as error:
                if error.status_code != 503 or loop.time() > deadline:
                    return ERROR, {"code": error.code, "message": error.message}
                log.warning("task events: backends unavailable", task_id=self.task_id)
            await asyncio.sleep(POLL_S * 4)

    async def events(self, first: TaskSnapshot) -> AsyncIterator[ServerSentEvent]:
        """`snapshot`, the changes as they happen, then `task_ended` (or `error`).

        Views come from the `state` query, or from Postgres when the query does not answer in
        time; the row may lag behind what was already sent, so a view older (lower version)
        than the last one sent is skipped: the stream never moves a task or subtask backwards.
        """
        current = first
        yield self._sse(detail_event(SNAPSHOT, current.detail))
        while not current.detail.task.status.is_terminal:
            await asyncio.sleep(POLL_S)
            view = await self._next()
            if not isinstance(view, TaskSnapshot):
                yield self._sse(view)
                return
            if view.version < current.version:
                continue
            for event in changes(current.detail, view.detail):
                yield self._sse(event)
            current = view
        yield self._sse(detail_event(TASK_ENDED, current.detail))


@router.get(
    "/tasks/{task_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "An SSE stream: `snapshot`, `plan_ready`, `task_status`,"
            " `subtask_started|completed|failed|blocked|cancelled`, then `task_ended`.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **error_responses(401, 404, 422, 503),
    },
)
async def task_events(
    task_id: TaskId, caller: CallerDep, backends: BackendsDep
) -> EventSourceResponse:
    """Follow a task: its current state first, then every change, closing when it ends."""
    first = await find_snapshot(backends, task_id, caller, live_first=True)
    stream = _Stream(backends, task_id, caller)
    return EventSourceResponse(stream.events(first), ping=PING_S)
