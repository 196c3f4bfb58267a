"""`/tasks`: submit, read, list, cancel and approve tasks."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BeforeValidator, ValidationError
from temporalio.client import WorkflowFailureError
from temporalio.service import RPCError

from mahsm.api.auth import CallerDep, authenticate
from mahsm.api.cursors import decode_cursor
from mahsm.api.deps import (
    ApiError,
    Backends,
    BackendsDep,
    BackendUnavailable,
    DbPoolDep,
    SettingsDep,
    TemporalClientDep,
    invalid,
)
from mahsm.api.json_body import Utf8JsonRoute
from mahsm.api.pipeline_runs import task_request
from mahsm.api.pipeline_schemas import TaskSubmission
from mahsm.api.pool_views import check_capabilities
from mahsm.api.read_model import TaskFilter, list_tasks
from mahsm.api.schemas import (
    ErrorBody,
    ExternalLinks,
    TaskAccepted,
    TaskDetail,
    TaskLinks,
    TaskPage,
    TaskStatusChange,
)
from mahsm.api.task_access import approve_task, cancel_task, find_task, raise_unavailable
from mahsm.api.task_links import task_links
from mahsm.api.text_guard import reject_unstorable_params
from mahsm.contracts.estimate import EstimateReport, EstimateRequest
from mahsm.contracts.task import ApprovalDecision, TaskStatus
from mahsm.estimates.run import NoTaskWorker, request_estimate
from mahsm.tasks import start_task, temporal_ui_link

TASK_ID_PATTERN = r"^task-[A-Za-z0-9_.\-]{1,120}$"


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route may answer, all `ErrorBody`."""
    text = {
        400: "The body could not be read (not UTF-8 JSON)",
        401: "Missing or invalid API key",
        403: "Not allowed",
        404: "No such task visible to the caller",
        409: "The task's state does not allow this",
        413: "Request body too large",
        422: "Invalid input; the message names the field",
        502: "The planner failed (the message says why)",
        503: "Temporal or Postgres is unreachable",
    }
    return {code: {"model": ErrorBody, "description": text[code]} for code in codes}


TaskId = Annotated[
    str,
    Path(
        pattern=TASK_ID_PATTERN,
        description="The task id returned by POST /tasks, e.g. task-0b9c6f1e-...",
    ),
]

router = APIRouter(
    prefix="/tasks",
    tags=["tasks"],
    route_class=Utf8JsonRoute,
    dependencies=[Depends(authenticate), Depends(reject_unstorable_params)],
    responses=error_responses(401, 422, 503),
)


def links(task_id: str, *, ui_url: str, namespace: str) -> TaskLinks:
    """Where to follow a task."""
    return TaskLinks(
        self=f"/tasks/{task_id}",
        events=f"/tasks/{task_id}/events",
        temporal_ui=temporal_ui_link(ui_url, namespace, task_id),
    )


@router.post(
    "",
    status_code=202,
    response_model=TaskAccepted,
    responses=error_responses(400, 403, 413),
)
async def submit_task(
    body: TaskSubmission,
    caller: CallerDep,
    client: TemporalClientDep,
    settings: SettingsDep,
    backends: BackendsDep,
    http: Request,
) -> TaskAccepted:
    """Start a task and return at once; follow it with `links.self` or `links.events`.

    A pipeline run gives `pipeline` or `pipeline_ref` with `inputs` (docs/pipelines.md); it is
    checked completely first, and every problem is answered in one 422 naming the step and
    field, before anything starts. With API keys the task belongs to the key's user: a
    `user_id` naming someone else is 403.
    """
    request = await task_request(body, backends)
    await check_capabilities(http.app, request, backends)
    if caller.user is not None:
        if request.user_id not in (None, caller.user):
            raise ApiError(
                403,
                code="user_mismatch",
                message=f"user_id '{request.user_id}' is not the owner of this API key;"
                " omit user_id, tasks belong to the key's user.",
                details={"field": "body.user_id"},
            )
        request = request.model_copy(update={"user_id": caller.user})
    try:
        handle = await start_task(client, request, queue_prefix=settings.queue_prefix)
    except RPCError as error:
        raise_unavailable(error)
    return TaskAccepted(
        task_id=handle.id,
        status=TaskStatus.PENDING,
        links=links(
            handle.id, ui_url=settings.temporal_ui_url, namespace=settings.temporal_namespace
        ),
    )


@router.post(
    "/estimate",
    response_model=EstimateReport,
    responses=error_responses(400, 413, 502),
)
async def estimate_task(
    body: EstimateRequest, client: TemporalClientDep, settings: SettingsDep
) -> EstimateReport:
    """Expected LLM calls, tokens, cost and duration of a task's plan; nothing runs.

    Without `plan`, the planner is asked once (its cost is `planning_usage`). See
    docs/estimates.md.
    """
    try:
        request = body.task_request()
    except ValidationError as error:  # the plan's structure (ids, dependencies, cycles)
        raise ApiError(
            422,
            code="validation_error",
            message="Invalid request: body.plan: " + "; ".join(e["msg"] for e in error.errors()),
            details=[{"loc": ["body", "plan"], "msg": e["msg"]} for e in error.errors()],
        ) from error
    try:
        return await request_estimate(
            client,
            request,
            queue_prefix=settings.queue_prefix,
            timeout_s=settings.llm_timeout_s + 30,
        )
    except RPCError as error:
        raise_unavailable(error)
    except NoTaskWorker as error:
        raise ApiError(503, code="no_task_worker", message=str(error)) from error
    except WorkflowFailureError as error:
        cause = error.cause
        while cause.__cause__ is not None and isinstance(cause.__cause__, Exception):
            cause = cause.__cause__
        raise ApiError(
            502, code="estimate_failed", message=f"the estimate could not be made: {cause}"
        ) from error


def _iso8601(value: object) -> object:
    if isinstance(value, str) and not re.match(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("expected an ISO 8601 date-time, e.g. 2025-01-31T12:00:00Z")
    return value


# Pydantic alone would also take a number of seconds since 1970 for a datetime.
IsoDateTime = Annotated[datetime, BeforeValidator(_iso8601)]


def _utc(value: datetime | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as error:
        problem = "out of range; give a date-time from year 1 to 9999 in UTC"
        raise invalid([{"loc": ["query", field], "msg": problem}]) from error


_LIST_PARAMS = frozenset(
    {"status", "user_id", "created_after", "created_before", "cursor", "limit", "q"}
)


async def _known_query_only(request: Request) -> None:
    unknown = sorted(set(request.query_params) - _LIST_PARAMS)
    if unknown:
        raise ApiError(
            422,
            code="validation_error",
            message=f"Invalid request: query.{unknown[0]}: unknown parameter; expected one of "
            + ", ".join(sorted(_LIST_PARAMS)),
            details=[{"loc": ["query", name], "msg": "unknown parameter"} for name in unknown],
        )


@router.get("", response_model=TaskPage, dependencies=[Depends(_known_query_only)])
async def list_all_tasks(
    caller: CallerDep,
    pool: DbPoolDep,
    status: Annotated[list[TaskStatus] | None, Query(description="any of these")] = None,
    user_id: Annotated[str | None, Query(max_length=200)] = None,
    created_after: Annotated[IsoDateTime | None, Query(description="inclusive")] = None,
    created_before: Annotated[IsoDateTime | None, Query(description="exclusive")] = None,
    cursor: Annotated[str | None, Query(max_length=1000, description="next_cursor")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    q: Annotated[
        str | None, Query(max_length=200, description="text in the description or id")
    ] = None,
) -> TaskPage:
    """Tasks newest first, from Postgres (a task appears a moment after it is started).

    With API keys only the caller's own tasks are listed; a `user_id` naming someone else
    matches nothing.
    """
    after = None if cursor is None else decode_cursor(cursor, listing="GET /tasks")
    if caller.user is not None and user_id not in (None, caller.user):
        return TaskPage(tasks=[], next_cursor=None)
    where = TaskFilter(
        user_id=caller.user or user_id,
        statuses=status or (),
        created_after=_utc(created_after, "created_after"),
        created_before=_utc(created_before, "created_before"),
        text=q,
    )
    return await list_tasks(pool, where=where, after=after, limit=limit)


@router.get("/{task_id}", response_model=TaskDetail, responses=error_responses(404))
async def get_task(task_id: TaskId, caller: CallerDep, backends: BackendsDep) -> TaskDetail:
    """The task and its subtasks: live while it runs, from Postgres once it has ended.

    `links`: its trace (a Langfuse URL when configured) and its subtasks' child workflows.
    """
    # The links are read while the task is: one round trip less on every GET. They are shown
    # only once `find_task` has found the task visible to the caller.
    links = asyncio.ensure_future(_links(backends, task_id))
    try:
        detail = await find_task(backends, task_id, caller)
    except BaseException:
        links.cancel()
        raise
    detail.links = await links
    return detail


async def _links(backends: Backends, task_id: str) -> ExternalLinks | None:
    try:
        return await task_links(await backends.pool(), task_id)
    except BackendUnavailable:  # links come from Postgres; a running task is still read live
        return None


@router.post(
    "/{task_id}/cancel",
    status_code=202,
    response_model=TaskStatusChange,
    responses=error_responses(404, 409),
)
async def cancel(task_id: TaskId, caller: CallerDep, backends: BackendsDep) -> TaskStatusChange:
    """Request cancellation; accepted again while the task still runs, 409 once it has ended.

    `status` is the task's status when the request was accepted; it becomes `cancelled` once
    running subtasks have been stopped.
    """
    return await cancel_task(backends, task_id, caller)


@router.post(
    "/{task_id}/approve",
    response_model=TaskStatusChange,
    responses=error_responses(400, 404, 409, 413),
)
async def approve(
    task_id: TaskId, decision: ApprovalDecision, caller: CallerDep, backends: BackendsDep
) -> TaskStatusChange:
    """Approve (it runs) or reject (it ends `cancelled`) a task awaiting approval."""
    return await approve_task(backends, task_id, caller, decision)
