"""Finding a task and acting on it: the workflow's `state` query while it runs, Postgres after.

A task's row appears in Postgres a moment after its workflow starts, and the workflow may be
gone from Temporal (retention) long after it ended, so every read tries both sources.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, timedelta
from typing import Any, NoReturn

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError, RPCStatusCode

from api.auth import Caller
from api.deps import ApiError, Backends, BackendUnavailable
from api.read_model import TaskSnapshot, load_task, resolve_blobs
from api.schemas import TaskDetail, TaskStatusChange, subtask_view, task_view
from mahsm.contracts.task import ApprovalDecision, TaskRequest, TaskState, TaskStatus
from mahsm.logging import redact_text
from mahsm.tasks import TASK_WORKFLOW
from workflows.task_workflow import TaskWorkflow

RPC_TIMEOUT = timedelta(seconds=5)
# The `state` query is answered by a worker: a busy or absent one must not hold a read for
# long when Postgres has the task's row to serve instead.
QUERY_TIMEOUT = timedelta(seconds=2)
# Below the REST client's default 30 s request timeout, so the caller sees the API's 503.
UPDATE_TIMEOUT = timedelta(seconds=20)
# Not found, or an id Temporal refuses: either way there is no such task in Temporal.
_ABSENT = (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT)
# How the client reports an RPC that ran out of `rpc_timeout`.
_TIMED_OUT = (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED)
_NO_ANSWER = "no answer in time (are the task workers running?)"


def task_not_found(task_id: str) -> ApiError:
    """404 `task_not_found` (also for another user's task: its existence is not revealed)."""
    return ApiError(
        404,
        code="task_not_found",
        message=f"No task '{task_id}' is visible to you; list yours with GET /tasks.",
        details={"task_id": task_id},
    )


def task_ended(task_id: str, status: TaskStatus | None) -> ApiError:
    """409 `task_ended`: the task can no longer be changed."""
    shown = status.value if status else "ended"
    return ApiError(
        409,
        code="task_ended",
        message=f"Task '{task_id}' has ended ({shown}); it can no longer be changed.",
        details={"task_id": task_id, "status": status.value if status else None},
    )


def raise_unavailable(error: RPCError) -> NoReturn:
    """Turn an RPC failure that is not about the task into 503 `temporal_unavailable`."""
    reason = redact_text(error.message) or (error.status.name if error.status else "RPC failed")
    if error.status in _TIMED_OUT:
        reason = _NO_ANSWER
    raise BackendUnavailable("temporal", reason) from error


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


async def _unstarted_state(client: Client, handle: WorkflowHandle[Any, Any]) -> TaskState | None:
    """A `pending` state from the workflow's start event, for a task no worker has run yet."""
    async for event in handle.fetch_history_events(rpc_timeout=RPC_TIMEOUT):
        started = event.workflow_execution_started_event_attributes
        if started.workflow_type.name != TASK_WORKFLOW:
            return None
        [request] = await client.data_converter.decode(started.input.payloads, [TaskRequest])
        start_time = event.event_time.ToDatetime(tzinfo=UTC)
        return TaskState(
            task_id=handle.id,
            description=request.description,
            user_id=request.user_id,
            created_at=start_time,
            updated_at=start_time,
            options=request.options,
        )
    return None


class QueryTimedOut(BackendUnavailable):
    """The `state` query got no answer within `QUERY_TIMEOUT` (workers busy, or none)."""

    def __init__(self) -> None:
        super().__init__("temporal", _NO_ANSWER)


async def query_state(client: Client, task_id: str) -> TaskState | None:
    """The `state` query's answer; None when Temporal has no such task workflow.

    Raises:
        QueryTimedOut: No worker answered within `QUERY_TIMEOUT`.
        BackendUnavailable: Temporal cannot be reached.
    """
    handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(task_id)
    try:
        return await handle.query(TaskWorkflow.state, rpc_timeout=QUERY_TIMEOUT)
    except WorkflowQueryFailedError:  # a workflow that is not a TaskWorkflow
        return None
    except RPCError as error:
        if error.status in _ABSENT:
            return None
        if error.status in _TIMED_OUT:
            raise QueryTimedOut() from error
        raise_unavailable(error)


async def unstarted_state(client: Client, task_id: str) -> TaskState | None:
    """The `pending` state of a task whose workflow no worker has run (from its start event).

    Raises:
        BackendUnavailable: Temporal cannot answer.
    """
    handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(task_id)
    try:
        return await _unstarted_state(client, handle)
    except RPCError as error:
        if error.status in _ABSENT:
            return None
        raise_unavailable(error)


async def _stored(backends: Backends, task_id: str) -> tuple[TaskSnapshot | None, ApiError | None]:
    try:
        return await load_task(await backends.pool(), task_id), None
    except BackendUnavailable as error:
        return None, error


async def _live(
    backends: Backends, task_id: str
) -> tuple[TaskState | None, BackendUnavailable | None]:
    try:
        return await query_state(await backends.temporal(), task_id), None
    except BackendUnavailable as error:
        return None, error


async def current_snapshot(backends: Backends, task_id: str, *, live_first: bool) -> TaskSnapshot:
    """The task's current state from the best source that answers.

    While the task runs its workflow's `state` query is the source; once it has ended (or when
    the query fails or gets no answer within `QUERY_TIMEOUT`) its Postgres row is. A task with
    neither an answer nor a row yet, whose query timed out, is one no worker has picked up: it
    is shown `pending`, from its workflow's start event.

    Args:
        backends: Temporal and Postgres.
        task_id: The task (workflow) id.
        live_first: Ask Temporal first and Postgres only when the query does not answer (for
            streams, which poll running tasks). Otherwise Postgres is read first and Temporal
            asked only while the row is missing or the task has not ended, which spares
            closed workflows a replay.

    Raises:
        ApiError: 404 when neither source knows the task; 503 when neither can answer.
    """
    if live_first:
        state, live_error = await _live(backends, task_id)
        if state is not None:
            return snapshot_of(state)
        stored, stored_error = await _stored(backends, task_id)
    else:
        stored, stored_error = await _stored(backends, task_id)
        if stored is not None and stored.detail.task.status.is_terminal:
            return stored
        state, live_error = await _live(backends, task_id)
        if state is not None:
            live = snapshot_of(state)
            # The row is written from the same state, so it is never ahead of the query.
            return live if stored is None or live.version >= stored.version else stored
    if stored is not None:  # Temporal forgot it, is down, or its workers are too busy
        return stored
    if isinstance(live_error, QueryTimedOut) and stored_error is None:
        unstarted = await unstarted_state(await backends.temporal(), task_id)
        if unstarted is not None:
            return snapshot_of(unstarted)
        raise task_not_found(task_id)
    error = stored_error or live_error
    if error is not None:
        raise error
    raise task_not_found(task_id)


async def find_snapshot(
    backends: Backends, task_id: str, caller: Caller, *, live_first: bool = False
) -> TaskSnapshot:
    """The task as the caller may see it, large outputs resolved, with its version."""
    snapshot = await current_snapshot(backends, task_id, live_first=live_first)
    if not caller.may_see(snapshot.detail.task.user_id):
        raise task_not_found(task_id)
    if snapshot.result_ref is None and not snapshot.output_refs:
        return snapshot
    try:
        detail = await resolve_blobs(await backends.pool(), snapshot)
    except BackendUnavailable:
        return snapshot  # large outputs stay null until Postgres is back
    return replace(snapshot, detail=detail)


async def find_task(
    backends: Backends, task_id: str, caller: Caller, *, live_first: bool = False
) -> TaskDetail:
    """The task as the caller may see it, with large outputs resolved; 404 if not theirs."""
    return (await find_snapshot(backends, task_id, caller, live_first=live_first)).detail


async def cancel_task(backends: Backends, task_id: str, caller: Caller) -> TaskStatusChange:
    """Request cancellation of a running task; asking again while it runs is accepted too.

    A task that completed or failed is ended even while its workflow writes its final state;
    one being cancelled accepts further cancel requests until its workflow has closed.
    """
    detail = await find_task(backends, task_id, caller)
    status = detail.task.status
    if status.is_terminal and status != TaskStatus.CANCELLED:
        raise task_ended(task_id, status)
    handle: WorkflowHandle[Any, Any] = (await backends.temporal()).get_workflow_handle(task_id)
    try:
        description = await handle.describe(rpc_timeout=RPC_TIMEOUT)
        if description.status != WorkflowExecutionStatus.RUNNING:
            raise task_ended(task_id, status)
        await handle.cancel(rpc_timeout=RPC_TIMEOUT)
    except RPCError as error:
        if error.status in _ABSENT:
            raise task_ended(task_id, detail.task.status) from error
        raise_unavailable(error)
    return TaskStatusChange(task_id=task_id, status=detail.task.status)


async def approve_task(
    backends: Backends, task_id: str, caller: Caller, decision: ApprovalDecision
) -> TaskStatusChange:
    """Approve or reject a task awaiting approval; 409 when it is not awaiting it."""
    detail = await find_task(backends, task_id, caller)
    handle: WorkflowHandle[Any, Any] = (await backends.temporal()).get_workflow_handle(task_id)
    try:
        outcome = await handle.execute_update(
            TaskWorkflow.approve, decision, rpc_timeout=UPDATE_TIMEOUT
        )
    except WorkflowUpdateFailedError as error:
        cause = str(error.cause or error)
        raise ApiError(
            409,
            code="not_awaiting_approval",
            message=f"Task '{task_id}' cannot be approved now: {cause}.",
            details={"task_id": task_id, "status": detail.task.status.value},
        ) from error
    except WorkflowUpdateRPCTimeoutOrCancelledError as error:
        raise BackendUnavailable(
            "temporal",
            f"the approval got no answer within {UPDATE_TIMEOUT.total_seconds():g}s"
            " (are the task workers running?); it may still be applied when a worker picks"
            " the task up: check GET /tasks/{task_id} before retrying",
        ) from error
    except RPCError as error:
        if error.status in _ABSENT:
            raise task_ended(task_id, detail.task.status) from error
        raise_unavailable(error)
    return TaskStatusChange(task_id=task_id, status=outcome.status)
