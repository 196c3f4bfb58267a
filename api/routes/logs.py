"""`GET /logs`: the event log of every task the caller may see, filtered and paginated."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from mahsm.api.auth import CallerDep, authenticate
from mahsm.api.cursors import decode_cursor
from mahsm.api.dashboard_schemas import LogLevel, LogPage
from mahsm.api.deps import ApiError, DbPoolDep
from mahsm.api.event_log import LogFilter, list_log
from mahsm.api.routes.tasks import TASK_ID_PATTERN, IsoDateTime, _utc, error_responses
from mahsm.api.text_guard import reject_unstorable_params

_PARAMS = frozenset({"task_id", "kind", "level", "since", "until", "cursor", "limit"})
KINDS = ("task_status", "plan_ready", "subtask_status", "note")


async def _known_query_only(request: Request) -> None:
    unknown = sorted(set(request.query_params) - _PARAMS)
    if unknown:
        raise ApiError(
            422,
            code="validation_error",
            message=f"Invalid request: query.{unknown[0]}: unknown parameter; expected one of "
            + ", ".join(sorted(_PARAMS)),
            details=[{"loc": ["query", name], "msg": "unknown parameter"} for name in unknown],
        )


router = APIRouter(
    tags=["logs"],
    dependencies=[
        Depends(authenticate),
        Depends(reject_unstorable_params),
        Depends(_known_query_only),
    ],
    responses=error_responses(401, 422, 503),
)


@router.get("/logs", response_model=LogPage)
async def list_logs(
    caller: CallerDep,
    pool: DbPoolDep,
    task_id: Annotated[str | None, Query(pattern=TASK_ID_PATTERN)] = None,
    kind: Annotated[
        list[str] | None, Query(description="any of: " + ", ".join(KINDS), max_length=10)
    ] = None,
    level: Annotated[list[LogLevel] | None, Query(description="any of these")] = None,
    since: Annotated[IsoDateTime | None, Query(description="inclusive")] = None,
    until: Annotated[IsoDateTime | None, Query(description="exclusive")] = None,
    cursor: Annotated[str | None, Query(max_length=1000, description="next_cursor")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> LogPage:
    """Events of the caller's tasks (all tasks without API keys), newest first.

    `level` is derived: `error` for a failed or timed-out task or subtask, `warning` for one
    cancelled or blocked and for notes, `info` otherwise.
    """
    for value in kind or []:
        if value not in KINDS:
            raise ApiError(
                422,
                code="validation_error",
                message=f"Invalid request: query.kind: '{value[:50]}' is not an event kind;"
                " use one of " + ", ".join(KINDS),
                details=[{"loc": ["query", "kind"], "msg": "unknown event kind"}],
            )
    after = None if cursor is None else decode_cursor(cursor, listing="GET /logs", with_seq=True)
    where = LogFilter(
        user_id=caller.user,
        task_id=task_id,
        kinds=list(kind or []),
        levels=list(level or []),
        since=_utc(since, "since"),
        until=_utc(until, "until"),
    )
    return await list_log(pool, where=where, after=after, limit=limit)
