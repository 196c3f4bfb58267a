"""Acting on a task's workflow: the `state` query, the `approve` update and cancellation.

The one module through which every caller (the API, `MahsmClient`'s Temporal mode) drives
`TaskWorkflow`, so all of them wait as long and fail with the same errors (`mahsm.errors`,
with the API's codes and statuses). The query and update are addressed by the names in
`mahsm.contracts.task` with typed results: nothing here imports `workflows/`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, timedelta
from typing import Any

from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from mahsm.contracts.task import (
    APPROVE_UPDATE,
    STATE_QUERY,
    ApprovalDecision,
    ApprovalOutcome,
    TaskRequest,
    TaskState,
    TaskStatus,
)
from mahsm.errors import Conflict, ServiceUnavailable, TaskNotFound
from mahsm.logging import redact_text
from mahsm.tasks import TASK_WORKFLOW

# Describe, cancel, history: answered by the Temporal server alone.
RPC_TIMEOUT = timedelta(seconds=5)
# The `state` query is answered by a worker, which may have to replay the workflow first; a
# busy or absent one must not hold a caller forever. Callers that have another source (the
# API reads Postgres) pass a shorter bound.
QUERY_TIMEOUT = timedelta(seconds=10)
# How long `approve` waits for a worker to take the decision; below the REST client's default
# 30 s request timeout, so its caller sees the API's 503 rather than its own timeout.
UPDATE_TIMEOUT = timedelta(seconds=20)

# Not found, or an id Temporal refuses: either way there is no such workflow.
_ABSENT = (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT)
# How the SDK reports an RPC that ran out of its `rpc_timeout`.
_TIMED_OUT = (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED)


class NoAnswer(ServiceUnavailable):
    """Temporal took the call, but no worker answered within the timeout."""

    def __init__(self, task_id: str, timeout: timedelta, what: str, hint: str = "") -> None:
        super().__init__(
            f"{what} of task '{task_id}' got no answer within {timeout.total_seconds():g}s"
            f" (are the MAHSM task workers running on this queue prefix?){hint}",
            code="temporal_unavailable",
            status=503,
            details={"task_id": task_id},
        )


def temporal_unavailable(error: RPCError) -> ServiceUnavailable:
    """An RPC failure that is about Temporal, not about a task: 503 `temporal_unavailable`."""
    reason = redact_text(error.message) or (error.status.name if error.status else "RPC failed")
    return ServiceUnavailable(
        f"Temporal is unreachable: {reason}. Retry later; the API's GET /health tells more.",
        code="temporal_unavailable",
        status=503,
    )


def task_not_found(task_id: str) -> TaskNotFound:
    """404 `task_not_found`: Temporal has no workflow of this id."""
    return TaskNotFound(
        f"No task '{task_id}' in Temporal (a wrong id, or it ended longer ago than the"
        " namespace's retention).",
        status=404,
        details={"task_id": task_id},
    )


def task_ended(task_id: str, status: TaskStatus | None) -> Conflict:
    """409 `task_ended`: the task can no longer be changed."""
    shown = status.value if status else "ended"
    return Conflict(
        f"Task '{task_id}' has ended ({shown}); it can no longer be changed.",
        code="task_ended",
        status=409,
        details={"task_id": task_id, "status": status.value if status else None},
    )


def caller_cancelled() -> bool:
    """Whether the running asyncio task is being cancelled (its timeout, not Temporal's)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


@asynccontextmanager
async def _translated(
    task_id: str, timeout: timedelta, what: str, hint: str = ""
) -> AsyncIterator[None]:
    """Turn Temporal's errors about one task into `mahsm.errors`."""
    try:
        yield
    except RPCTimeoutOrCancelledError as error:
        if caller_cancelled():  # e.g. asyncio.timeout around us: not Temporal's fault
            raise asyncio.CancelledError() from error
        raise NoAnswer(task_id, timeout, what, hint) from error
    except RPCError as error:
        if error.status in _ABSENT:
            raise task_not_found(task_id) from error
        if error.status in _TIMED_OUT:
            raise NoAnswer(task_id, timeout, what, hint) from error
        raise temporal_unavailable(error) from error


class TaskDriver:
    """Queries, updates and cancels `TaskWorkflow` executions through one Temporal client.

    Args:
        client: A client using MAHSM's pydantic data converter.
        query_timeout: How long the `state` query may wait for a worker (`QUERY_TIMEOUT`).
        update_timeout: How long `approve` waits for a worker to take the decision (it may
            still be applied later; `UPDATE_TIMEOUT`).
    """

    def __init__(
        self,
        client: Client,
        *,
        query_timeout: timedelta | None = None,
        update_timeout: timedelta | None = None,
    ) -> None:
        self.client = client
        self.query_timeout = query_timeout or QUERY_TIMEOUT
        self.update_timeout = update_timeout or UPDATE_TIMEOUT

    def _handle(self, task_id: str) -> WorkflowHandle[Any, TaskState]:
        return self.client.get_workflow_handle(task_id, result_type=TaskState)

    async def state(self, task_id: str) -> TaskState | None:
        """The `state` query's answer (also after the end); None if there is no such task.

        Raises:
            NoAnswer: No worker answered within `query_timeout`.
            ServiceUnavailable: Temporal cannot be reached.
        """
        # The pending activities are read alongside the query, not after it: no extra wait.
        pending = asyncio.ensure_future(self._pending_activities(task_id))
        try:
            async with _translated(task_id, self.query_timeout, "The state query"):
                state: TaskState = await self._handle(task_id).query(
                    STATE_QUERY, result_type=TaskState, rpc_timeout=self.query_timeout
                )
            if not state.status.is_terminal:
                _show_retries(state, await pending)
            return state
        except WorkflowQueryFailedError:  # a workflow of this id that is no TaskWorkflow
            return None
        except TaskNotFound:
            return None
        finally:
            pending.cancel()  # unused when the task has ended or the query failed

    async def _pending_activities(self, task_id: str) -> list[PendingActivityInfo]:
        """The task's activities Temporal is running or retrying (empty when unknown)."""
        try:
            description = await self._handle(task_id).describe(rpc_timeout=RPC_TIMEOUT)
        except (RPCError, TimeoutError):
            return []  # the state is still right; only the retry notes are missing
        return list(description.raw_description.pending_activities)

    async def start_state(self, task_id: str) -> TaskState | None:
        """A `pending` state from the workflow's start event; None if there is no such task.

        For a task no worker has run yet, whose `state` query cannot be answered.

        Raises:
            ServiceUnavailable: Temporal cannot answer.
        """
        handle = self._handle(task_id)
        try:
            async with _translated(task_id, RPC_TIMEOUT, "Reading the history"):
                async for event in handle.fetch_history_events(rpc_timeout=RPC_TIMEOUT):
                    started = event.workflow_execution_started_event_attributes
                    if started.workflow_type.name != TASK_WORKFLOW:
                        return None
                    [request] = await self.client.data_converter.decode(
                        started.input.payloads, [TaskRequest]
                    )
                    start_time = event.event_time.ToDatetime(tzinfo=UTC)
                    return TaskState(
                        task_id=task_id,
                        description=request.description,
                        user_id=request.user_id,
                        created_at=start_time,
                        updated_at=start_time,
                        options=request.options,
                    )
        except TaskNotFound:
            return None
        return None

    async def execution_status(self, task_id: str) -> WorkflowExecutionStatus | None:
        """Whether the workflow runs or how it closed; None if Temporal does not know it.

        Raises:
            ServiceUnavailable: Temporal cannot answer.
        """
        try:
            async with _translated(task_id, RPC_TIMEOUT, "Describing the workflow"):
                description = await self._handle(task_id).describe(rpc_timeout=RPC_TIMEOUT)
        except TaskNotFound:
            return None
        return description.status

    async def cancel(self, task_id: str, *, status: TaskStatus) -> None:
        """Request cancellation; asking again while the task winds down is accepted too.

        Args:
            task_id: The task.
            status: Its status as the caller last read it (which also shows it exists).

        Raises:
            Conflict: 409 `task_ended` once it completed or failed, or its workflow closed.
            ServiceUnavailable: Temporal cannot answer.
        """
        if status.is_terminal and status != TaskStatus.CANCELLED:
            raise task_ended(task_id, status)
        if await self.execution_status(task_id) != WorkflowExecutionStatus.RUNNING:
            raise task_ended(task_id, status)
        try:
            async with _translated(task_id, RPC_TIMEOUT, "The cancel request"):
                await self._handle(task_id).cancel(rpc_timeout=RPC_TIMEOUT)
        except TaskNotFound as error:  # closed and gone between the two calls
            raise task_ended(task_id, status) from error

    async def approve(
        self, task_id: str, decision: ApprovalDecision, *, status: TaskStatus | None = None
    ) -> TaskStatus:
        """Run the `approve` update; returns the status the task moved to.

        Args:
            task_id: The task.
            decision: Approve or reject, with a comment.
            status: Its status as the caller last read it, if it did (for the messages).

        Raises:
            Conflict: 409 `not_awaiting_approval` unless it awaits approval; 409
                `task_ended` once its workflow has closed.
            TaskNotFound: Temporal knows no such task (and the caller saw none).
            NoAnswer: No worker took the decision within `update_timeout`; it may still be
                applied when one picks the task up.
        """
        pending = "; it may still be applied when a worker picks the task up: read its state"
        try:
            async with _translated(task_id, self.update_timeout, "The approval", pending):
                outcome: ApprovalOutcome = await self._handle(task_id).execute_update(
                    APPROVE_UPDATE,
                    decision,
                    result_type=ApprovalOutcome,
                    rpc_timeout=self.update_timeout,
                )
        except WorkflowUpdateFailedError as error:  # refused by the workflow's validator
            cause = error.cause
            reason = str(getattr(cause, "message", None) or cause or error)
            raise Conflict(
                f"Task '{task_id}' cannot be approved now: {reason}.",
                code="not_awaiting_approval",
                status=409,
                details={"task_id": task_id, "status": status.value if status else None},
            ) from error
        except TaskNotFound:
            if status is None and await self.execution_status(task_id) is None:
                raise
            raise task_ended(task_id, status) from None
        return outcome.status


def _show_retries(state: TaskState, pending: list[PendingActivityInfo]) -> None:
    """Put the calls being retried into `waiting_for` (the workflow cannot see retries).

    Temporal retries an activity without telling its workflow; its pending-activity record
    has the attempt and the last error. Engine-v2 activity ids say whose call it is:
    `<subtask>/llm-<n>`, `<subtask>/tool-<n>-<k>`, or the task's own `plan-<n>` and
    `aggregate`.
    """
    for activity in pending:
        if activity.attempt < 2:
            continue
        note = f"call {activity.activity_id} is being retried: attempt {activity.attempt}"
        if activity.HasField("last_failure") and activity.last_failure.message:
            note += f"; last error: {activity.last_failure.message[:500]}"
        subtask_id, sep, _ = activity.activity_id.partition("/")
        owner = next((i for i in state.subtasks if sep and i.subtask.id == subtask_id), None)
        if owner is not None:
            owner.result.waiting_for = owner.result.waiting_for or note
        else:
            state.waiting_for = note
