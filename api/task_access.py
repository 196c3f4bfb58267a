"""Finding a task and acting on it: the workflow's `state` query while it runs, Postgres after.

A task's row appears in Postgres a moment after its workflow starts, and the workflow may be
gone from Temporal (retention) long after it ended, so every read tries both sources.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import NoReturn

import asyncpg
from temporalio.service import RPCError

from mahsm.api.auth import Caller
from mahsm.api.deps import ApiError, Backends, BackendUnavailable
from mahsm.api.read_model import TaskSnapshot, load_task, read_task_row, resolve_blobs
from mahsm.api.schemas import TaskDetail, TaskStatusChange, subtask_view, task_view
from mahsm.contracts.task import ApprovalDecision, TaskState, TaskStatus
from mahsm.errors import MahsmError
from mahsm.task_driver import RPC_TIMEOUT as RPC_TIMEOUT  # for api/routes/agents.py
from mahsm.task_driver import NoAnswer, TaskDriver, temporal_unavailable


def api_error(error: MahsmError) -> ApiError:
    """The HTTP form of an error of `mahsm.task_driver`: its status, code and message."""
    return ApiError(
        error.status or 500, code=error.code, message=error.message, details=error.details
    )


def task_not_found(task_id: str) -> ApiError:
    """404 `task_not_found` (also for another user's task: its existence is not revealed)."""
    return ApiError(
        404,
        code="task_not_found",
        message=f"No task '{task_id}' is visible to you; list yours with GET /tasks.",
        details={"task_id": task_id},
    )


def raise_unavailable(error: RPCError) -> NoReturn:
    """Turn an RPC failure that is not about a task into 503 `temporal_unavailable`."""
    raise api_error(temporal_unavailable(error)) from error


# How long a read waits for the `state` query before serving the task's Postgres row: a busy
# or absent worker must not hold a read for long when the row can answer instead.
LIVE_QUERY_TIMEOUT = timedelta(seconds=2)


async def _driver(backends: Backends) -> TaskDriver:
    return TaskDriver(await backends.temporal(), query_timeout=LIVE_QUERY_TIMEOUT)


def snapshot_of(state: TaskState) -> TaskSnapshot:
    """The API view of the workflow's live state."""
    return TaskSnapshot(
        detail=TaskDetail(
            task=task_view(state), subtask_results=[subtask_view(s) for s in state.subtasks]
        ),
        result_ref=state.result_ref.blob_id if state.result_ref else None,
        output_refs={
            s.subtask.id: s.result.output_ref.blob_id
            for s in state.subtasks
            if s.result.output_ref is not None
        },
        version=state.version,
    )


async def _row(backends: Backends, task_id: str) -> tuple[asyncpg.Record | None, ApiError | None]:
    try:
        return await read_task_row(await backends.pool(), task_id), None
    except BackendUnavailable as error:
        return None, error


async def _stored(
    backends: Backends, task_id: str, row: asyncpg.Record
) -> tuple[TaskSnapshot | None, ApiError | None]:
    try:
        return await load_task(await backends.pool(), task_id, row=row), None
    except BackendUnavailable as error:
        return None, error


class _NoAnswer(ApiError):
    """The `state` query got no answer in time (workers busy, or none yet)."""


async def _live(backends: Backends, task_id: str) -> tuple[TaskState | None, ApiError | None]:
    try:
        return await (await _driver(backends)).state(task_id), None
    except BackendUnavailable as error:  # cannot connect to Temporal
        return None, error
    except NoAnswer as error:
        return None, _NoAnswer(503, code=error.code, message=error.message)
    except MahsmError as error:
        return None, api_error(error)


async def unstarted_state(backends: Backends, task_id: str) -> TaskState | None:
    """The `pending` state of a task from its workflow's start event (no worker involved)."""
    try:
        return await (await _driver(backends)).start_state(task_id)
    except MahsmError as error:
        raise api_error(error) from error


async def current_snapshot(backends: Backends, task_id: str) -> TaskSnapshot:
    """The task's current state from the best source that answers.

    While the task runs its workflow's `state` query is the source; once it has ended (or when
    the query fails or gets no answer within `LIVE_QUERY_TIMEOUT`) its Postgres row
    is. A task with neither an answer nor a row yet, whose query timed out, is one no worker
    has picked up: it is shown `pending`, from its workflow's start event.

    The row is read first, and Temporal asked only while the row is missing or the task has
    not ended, which spares closed workflows a replay. The subtasks' rows are read only when
    the Postgres row is what is shown: a running task costs one database read.

    Raises:
        ApiError: 404 when neither source knows the task; 503 when neither can answer.
    """
    row, stored_error = await _row(backends, task_id)
    stored: TaskSnapshot | None = None
    if row is not None and TaskStatus(row["status"]).is_terminal:
        stored, stored_error = await _stored(backends, task_id, row)
        if stored is not None:
            return stored
    state, live_error = await _live(backends, task_id)
    if state is not None:
        live = snapshot_of(state)
        # The row is written from the same state, so it is never ahead of the query.
        if row is None or live.version >= row["version"]:
            return live
    if row is not None and stored is None and stored_error is None:
        stored, stored_error = await _stored(backends, task_id, row)
    if stored is not None:  # Temporal forgot it, is down, or its workers are too busy
        return stored
    if isinstance(live_error, _NoAnswer) and stored_error is None:
        unstarted = await unstarted_state(backends, task_id)
        if unstarted is not None:
            return snapshot_of(unstarted)
        raise task_not_found(task_id)
    error = stored_error or live_error
    if error is not None:
        raise error
    raise task_not_found(task_id)


async def find_snapshot(backends: Backends, task_id: str, caller: Caller) -> TaskSnapshot:
    """The task as the caller may see it, large outputs resolved, with its version."""
    snapshot = await current_snapshot(backends, task_id)
    if not caller.may_see(snapshot.detail.task.user_id):
        raise task_not_found(task_id)
    if snapshot.result_ref is None and not snapshot.output_refs:
        return snapshot
    try:
        detail = await resolve_blobs(await backends.pool(), snapshot)
    except BackendUnavailable:
        return snapshot  # large outputs stay null until Postgres is back
    return replace(snapshot, detail=detail)


async def find_task(backends: Backends, task_id: str, caller: Caller) -> TaskDetail:
    """The task as the caller may see it, with large outputs resolved; 404 if not theirs."""
    return (await find_snapshot(backends, task_id, caller)).detail


async def cancel_task(backends: Backends, task_id: str, caller: Caller) -> TaskStatusChange:
    """Request cancellation of a running task; asking again while it runs is accepted too.

    A task that completed or failed is ended even while its workflow writes its final state;
    one being cancelled accepts further cancel requests until its workflow has closed.
    """
    status = (await find_task(backends, task_id, caller)).task.status
    try:
        await (await _driver(backends)).cancel(task_id, status=status)
    except MahsmError as error:
        raise api_error(error) from error
    return TaskStatusChange(task_id=task_id, status=status)


async def approve_task(
    backends: Backends, task_id: str, caller: Caller, decision: ApprovalDecision
) -> TaskStatusChange:
    """Approve or reject a task awaiting approval; 409 when it is not awaiting it."""
    status = (await find_task(backends, task_id, caller)).task.status
    try:
        outcome = await (await _driver(backends)).approve(task_id, decision, status=status)
    except MahsmError as error:
        raise api_error(error) from error
    return TaskStatusChange(task_id=task_id, status=outcome)
