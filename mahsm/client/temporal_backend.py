"""The direct-Temporal mode of `MahsmClient`: start, query and update `TaskWorkflow` itself.

No API is involved: this mode needs a Temporal client (and MAHSM workers on the same queue
prefix). Query, update and cancellation go through `mahsm.task_driver`, like the API's. The
live state is the workflow's `state` query, which also answers after the workflow has closed,
for as long as Temporal retains it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError
from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowExecutionStatus,
    WorkflowFailureError,
)
from temporalio.service import RPCError

from mahsm import search_attributes
from mahsm.client.models import (
    AgentPools,
    PipelinePage,
    PipelineRun,
    RegisteredPipeline,
    TaskFilter,
    TaskPage,
)
from mahsm.contracts.estimate import EstimateReport, EstimateRequest
from mahsm.contracts.pipeline import Pipeline
from mahsm.contracts.task import ApprovalDecision, TaskRequest, TaskState, TaskStatus
from mahsm.errors import InvalidRequest, MahsmError, ServiceUnavailable
from mahsm.estimates.run import NoTaskWorker, request_estimate
from mahsm.pipelines import validate_inputs, validate_pipeline
from mahsm.pipelines.files import run_description
from mahsm.queues import tasks_queue
from mahsm.task_driver import (
    TaskDriver,
    caller_cancelled,
    task_not_found,
    temporal_unavailable,
)
from mahsm.tasks import TASK_WORKFLOW, start_task, temporal_ui_link

_SETTLE_S = 0.2
ESTIMATE_TIMEOUT_S = 300.0
"""How long an estimate may take (a planner call and its retries)."""


@asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    """Temporal's errors of calls about no one task (start, list) as `mahsm.errors`."""
    try:
        yield
    except RPCTimeoutOrCancelledError as error:
        if caller_cancelled():
            raise asyncio.CancelledError() from error
        raise ServiceUnavailable(
            "Temporal gave no answer in time", code="temporal_unavailable", status=503
        ) from error
    except RPCError as error:
        raise temporal_unavailable(error) from error


class TemporalBackend:
    """Drives `TaskWorkflow` through a Temporal client, with `mahsm.task_driver.TaskDriver`.

    Args:
        client: A client using MAHSM's pydantic data converter (`mahsm.temporal_client.connect`).
        queue_prefix: Deployment prefix of the task queues (`MAHSM_QUEUE_PREFIX`).
        ui_url: Base URL of the Temporal Web UI, for links.
        update_timeout: How long `approve` waits for a worker to take the decision before
            raising `ServiceUnavailable` (the decision may still be applied later); the
            driver's `UPDATE_TIMEOUT`, the API's too, when omitted.
    """

    def __init__(
        self,
        client: Client,
        *,
        queue_prefix: str,
        ui_url: str | None = None,
        update_timeout: timedelta | None = None,
    ) -> None:
        self.client = client
        self.queue_prefix = queue_prefix
        self.ui_url = ui_url
        self.driver = TaskDriver(client, update_timeout=update_timeout)

    async def submit(self, request: TaskRequest) -> str:
        """Start `TaskWorkflow`; returns the task id (the workflow id)."""
        async with _translated():
            handle = await start_task(self.client, request, queue_prefix=self.queue_prefix)
        return handle.id

    async def estimate(self, request: EstimateRequest) -> EstimateReport:
        """Run `PlanEstimateWorkflow` (one planner call when there is no plan)."""
        try:
            task = request.task_request()
        except ValidationError as error:
            raise InvalidRequest(
                "Invalid request: plan: " + "; ".join(e["msg"] for e in error.errors()),
                code="validation_error",
                status=422,
            ) from error
        try:
            async with _translated():
                return await request_estimate(
                    self.client, task, queue_prefix=self.queue_prefix, timeout_s=ESTIMATE_TIMEOUT_S
                )
        except NoTaskWorker as error:
            raise ServiceUnavailable(str(error), code="no_task_worker", status=503) from error
        except WorkflowFailureError as error:
            cause: BaseException = error
            while isinstance(cause.__cause__, Exception):
                cause = cause.__cause__
            raise MahsmError(
                f"the estimate could not be made: {cause}", code="estimate_failed", status=502
            ) from error

    async def submit_pipeline(self, run: PipelineRun) -> str:
        """Start `TaskWorkflow` with the pipeline; its structure and inputs checked first.

        Registered pipelines live behind the API: a `pipeline_ref` needs the REST mode.
        Tools, transforms and providers are checked by the workers when the run starts.
        """
        if run.pipeline is None:
            raise _needs_api(f"running the registered pipeline '{run.pipeline_ref}'")
        problems = validate_pipeline(run.pipeline) + validate_inputs(run.pipeline, run.inputs)
        if problems:
            raise InvalidRequest(
                "Invalid request: " + "; ".join(f"pipeline.{p}" for p in problems),
                code="validation_error",
                status=422,
                details=[{"loc": p.field.split("."), "msg": p.message} for p in problems],
            )
        request = TaskRequest(
            description=run.description or run_description(run.pipeline),
            user_id=run.user_id,
            options=run.options,
            pipeline=run.pipeline,
            inputs=run.inputs,
        )
        return await self.submit(request)

    async def register_pipeline(self, pipeline: Pipeline) -> RegisteredPipeline:
        """Not offered in this mode: the registry is the API's (`POST /pipelines`)."""
        raise _needs_api("registering pipelines")

    async def get_pipeline(self, ref: str) -> RegisteredPipeline:
        """Not offered in this mode: the registry is the API's (`GET /pipelines/{name}`)."""
        raise _needs_api("reading registered pipelines")

    async def list_pipelines(self, *, limit: int, cursor: str | None) -> PipelinePage:
        """Not offered in this mode: the registry is the API's (`GET /pipelines`)."""
        raise _needs_api("listing registered pipelines")

    async def get(self, task_id: str) -> TaskState:
        """The `state` query's answer."""
        state = await self.driver.state(task_id)
        if state is None:
            raise task_not_found(task_id)
        return state

    async def cancel(self, task_id: str) -> None:
        """Request cancellation (again while it winds down); `Conflict` once it has ended."""
        state = await self.get(task_id)
        await self.driver.cancel(task_id, status=state.status)

    async def approve(self, task_id: str, decision: ApprovalDecision) -> TaskStatus:
        """Run the `approve` update; `Conflict` unless the task awaits approval.

        Raises:
            ServiceUnavailable: No worker took the decision within `update_timeout`.
        """
        return await self.driver.approve(task_id, decision)

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
        return await self.driver.execution_status(task_id) != WorkflowExecutionStatus.RUNNING

    def ui_link(self, task_id: str) -> str | None:
        """The task's page in the Temporal Web UI, when `ui_url` is known."""
        if not self.ui_url:
            return None
        return temporal_ui_link(self.ui_url, self.client.namespace, task_id)

    async def close(self) -> None:
        """Let the SDK's threads finish with the last call (Temporal clients need no closing).

        The SDK's Rust threads release Python objects a moment after a call returns; a script
        whose interpreter exits in that moment can abort ("PyGILState_Release: thread state
        must be current", temporalio/sdk-python#300). A short pause at close avoids it.
        """
        await asyncio.sleep(_SETTLE_S)


def _needs_api(what: str) -> MahsmError:
    return MahsmError(
        f"{what} needs the REST API (the registry is in its database); use"
        " MahsmClient.rest(...), or pass the pipeline itself (a Pipeline or a YAML file)",
        code="unsupported",
    )


def _utc(value: datetime) -> str:
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
