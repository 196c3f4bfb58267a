"""The direct-Temporal mode of `MahsmClient`: start, query and update `TaskWorkflow` itself.

No API is involved: this mode needs a Temporal client (and MAHSM workers on the same queue
prefix). It reads live state through the `TaskWorkflow.state` query, which also answers after
the workflow has closed, for as long as Temporal retains it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from mahsm import search_attributes
from mahsm.client.errors import (
    Conflict,
    InvalidRequest,
    MahsmError,
    ServiceUnavailable,
    TaskNotFound,
)
from mahsm.client.models import AgentPools, TaskFilter, TaskPage
from mahsm.contracts.task import ApprovalDecision, TaskRequest, TaskState, TaskStatus
from mahsm.queues import tasks_queue
from mahsm.tasks import TASK_WORKFLOW, start_task, temporal_ui_link
from workflows.task_workflow import TaskWorkflow

_UNAVAILABLE = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED}
# How long `approve` waits for a worker to take the decision.
UPDATE_TIMEOUT = timedelta(seconds=30)


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


@asynccontextmanager
async def _translated(task_id: str | None = None) -> AsyncIterator[None]:
    """Turn Temporal's errors into the client's exceptions."""
    try:
        yield
    except RPCTimeoutOrCancelledError as error:
        if _cancelling():  # the caller cancelled us (e.g. asyncio.timeout): not Temporal's fault
            raise asyncio.CancelledError() from error
        raise ServiceUnavailable(
            f"Temporal gave no answer in time{f' for task {task_id}' if task_id else ''}"
            " (are MAHSM workers running on this queue prefix?)",
            code="temporal_unavailable",
        ) from error
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND and task_id is not None:
            raise TaskNotFound(f"task {task_id} not found", status=404) from error
        if error.status in _UNAVAILABLE:
            raise ServiceUnavailable(
                f"Temporal is unreachable: {error.message}", code="temporal_unavailable"
            ) from error
        raise MahsmError(f"Temporal error: {error.message}", code="temporal_error") from error


class TemporalBackend:
    """Drives `TaskWorkflow` through a Temporal client.

    Args:
        client: A client using MAHSM's pydantic data converter (`mahsm.temporal_client.connect`).
        queue_prefix: Deployment prefix of the task queues (`MAHSM_QUEUE_PREFIX`).
        ui_url: Base URL of the Temporal Web UI, for links.
        update_timeout: How long `approve` waits for a worker to take the decision before
            raising `ServiceUnavailable` (the decision may still be applied later).
    """

    def __init__(
        self,
        client: Client,
        *,
        queue_prefix: str,
        ui_url: str | None = None,
        update_timeout: timedelta = UPDATE_TIMEOUT,
    ) -> None:
        self.client = client
        self.queue_prefix = queue_prefix
        self.ui_url = ui_url
        self.update_timeout = update_timeout

    def _handle(self, task_id: str) -> WorkflowHandle[TaskWorkflow, TaskState]:
        return self.client.get_workflow_handle_for(TaskWorkflow.run, task_id)

    async def _execution_status(self, task_id: str) -> WorkflowExecutionStatus | None:
        async with _translated(task_id):
            description = await self._handle(task_id).describe()
        return description.status

    async def submit(self, request: TaskRequest) -> str:
        """Start `TaskWorkflow`; returns the task id (the workflow id)."""
        async with _translated():
            handle = await start_task(self.client, request, queue_prefix=self.queue_prefix)
        return handle.id

    async def get(self, task_id: str) -> TaskState:
        """The `state` query's answer."""
        async with _translated(task_id):
            return await self._handle(task_id).query(TaskWorkflow.state)

    async def cancel(self, task_id: str) -> None:
        """Request cancellation (again while it winds down); `Conflict` once it has ended."""
        state = await self.get(task_id)
        ended = state.status.is_terminal and state.status != TaskStatus.CANCELLED
        running = await self._execution_status(task_id) == WorkflowExecutionStatus.RUNNING
        if ended or not running:  # like the API: asking again while it winds down is fine
            raise Conflict(f"task {task_id} has already ended ({state.status.value})", status=409)
        async with _translated(task_id):
            await self._handle(task_id).cancel()

    async def approve(self, task_id: str, decision: ApprovalDecision) -> TaskStatus:
        """Run the `approve` update; `Conflict` unless the task awaits approval.

        Raises:
            ServiceUnavailable: No worker took the decision within `update_timeout`.
        """
        try:
            async with _translated(task_id):
                outcome = await self._handle(task_id).execute_update(
                    TaskWorkflow.approve, decision, rpc_timeout=self.update_timeout
                )
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            message = str(getattr(cause, "message", None) or cause or error)
            raise Conflict(f"cannot approve {task_id}: {message}", status=409) from error
        except TaskNotFound:
            if await self._execution_status(task_id) is not None:  # closed, not unknown
                raise Conflict(
                    f"cannot approve {task_id}: the task has ended", status=409
                ) from None
            raise
        return outcome.status

    async def list(self, filters: TaskFilter, *, limit: int, cursor: str | None) -> TaskPage:
        """Tasks of this queue prefix, newest first, read through visibility and the query."""
        clauses = [
            f"WorkflowType = '{TASK_WORKFLOW}'",
            f"TaskQueue = {_quoted(tasks_queue(self.queue_prefix))}",
        ]
        if filters.status is not None:
            clauses.append(f"{search_attributes.TASK_STATUS.name} = {_quoted(filters.status)}")
        if filters.user_id is not None:
            clauses.append(f"{search_attributes.USER_ID.name} = {_quoted(filters.user_id)}")
        if filters.created_after is not None:
            clauses.append(f"StartTime >= {_quoted(_utc(filters.created_after))}")
        if filters.created_before is not None:
            clauses.append(f"StartTime < {_quoted(_utc(filters.created_before))}")
        try:
            token = base64.urlsafe_b64decode(cursor.encode()) if cursor else None
        except (binascii.Error, ValueError) as error:
            raise InvalidRequest(f"invalid cursor {cursor!r}", status=422) from error
        async with _translated():
            executions = self.client.list_workflows(
                " AND ".join(clauses), page_size=limit, next_page_token=token
            )
            await executions.fetch_next_page(page_size=limit)
            page = list(executions.current_page or [])[:limit]
            next_token = executions.next_page_token
        states = await asyncio.gather(*(self.get(execution.id) for execution in page))
        return TaskPage(
            tasks=list(states),
            next_cursor=base64.urlsafe_b64encode(next_token).decode() if next_token else None,
        )

    async def agents(self) -> AgentPools:
        """Not offered in this mode: the API's `GET /agents` reads Temporal's pollers."""
        raise MahsmError(
            "listing agents needs the REST API (GET /agents); use MahsmClient.rest(...)",
            code="unsupported",
        )

    async def closed(self, task_id: str, state: TaskState) -> bool:
        """Whether the task can no longer change: a final status, or a closed workflow."""
        if state.status.is_terminal:
            return True
        return await self._execution_status(task_id) != WorkflowExecutionStatus.RUNNING

    def ui_link(self, task_id: str) -> str | None:
        """The task's page in the Temporal Web UI, when `ui_url` is known."""
        if not self.ui_url:
            return None
        return temporal_ui_link(self.ui_url, self.client.namespace, task_id)

    async def close(self) -> None:
        """Nothing to close: Temporal clients need no closing."""


def _utc(value: datetime) -> str:
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
