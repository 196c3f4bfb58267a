"""`MahsmClient`: submit tasks, follow them, cancel and approve them, from Python.

Two modes behind one interface:

- REST (`MahsmClient.rest(url)`): talks to the MAHSM API; works from anywhere the API is
  reachable and honours its API keys and per-user visibility.
- Temporal (`MahsmClient.temporal(settings)` or `MahsmClient.from_temporal_client(...)`):
  starts and queries `TaskWorkflow` directly; needs access to Temporal, no API.

Both return task state as `mahsm.contracts.task.TaskState`.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from mahsm.client.errors import ServiceUnavailable
from mahsm.client.models import (
    AgentPools,
    PipelinePage,
    PipelineRun,
    RegisteredPipeline,
    TaskFilter,
    TaskPage,
)
from mahsm.client.pipelines import PipelineMethods
from mahsm.client.rest import RestBackend
from mahsm.contracts.estimate import EstimateReport, EstimateRequest
from mahsm.contracts.pipeline import Pipeline
from mahsm.contracts.stream import TokenChunk
from mahsm.contracts.task import (
    ApprovalDecision,
    Plan,
    TaskOptions,
    TaskRequest,
    TaskState,
    TaskStatus,
)

if TYPE_CHECKING:
    from temporalio.client import Client

    from mahsm.settings import Settings

ProgressCallback = Callable[[TaskState], Awaitable[object] | object]


class _Backend(Protocol):
    async def submit(self, request: TaskRequest) -> str: ...
    async def estimate(self, request: EstimateRequest) -> EstimateReport: ...
    async def submit_pipeline(self, run: PipelineRun) -> str: ...
    async def register_pipeline(self, pipeline: Pipeline) -> RegisteredPipeline: ...
    async def get_pipeline(self, ref: str) -> RegisteredPipeline: ...
    async def list_pipelines(self, *, limit: int, cursor: str | None) -> PipelinePage: ...
    async def get(self, task_id: str) -> TaskState: ...
    async def cancel(self, task_id: str) -> None: ...
    async def approve(self, task_id: str, decision: ApprovalDecision) -> TaskStatus: ...
    async def list(self, filters: TaskFilter, *, limit: int, cursor: str | None) -> TaskPage: ...
    async def agents(self) -> AgentPools: ...
    async def closed(self, task_id: str, state: TaskState) -> bool: ...
    def ui_link(self, task_id: str) -> str | None: ...
    async def close(self) -> None: ...


class MahsmClient(PipelineMethods):
    """Async client of MAHSM. Build it with `rest`, `temporal` or `from_temporal_client`.

    Use it as an async context manager (or call `close`) to release its connections.
    """

    _backend: _Backend

    def __init__(self, backend: _Backend) -> None:
        self._backend = backend

    @classmethod
    def rest(
        cls,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> MahsmClient:
        """A client of the REST API at `base_url` (e.g. "http://127.0.0.1:8000").

        Args:
            base_url: Where the API listens.
            api_key: Sent as a bearer token; needed when the API has `MAHSM_API_KEYS`.
            timeout_s: Timeout of each request.
            transport: Optional httpx transport (e.g. `httpx.ASGITransport(app)` in tests).
        """
        return cls(RestBackend(base_url, api_key=api_key, timeout_s=timeout_s, transport=transport))

    @classmethod
    async def temporal(cls, settings: Settings | None = None) -> MahsmClient:
        """A client that connects to Temporal as configured by `settings` (`MAHSM_*`).

        Raises:
            ServiceUnavailable: Temporal cannot be reached.
        """
        from mahsm.settings import get_settings
        from mahsm.temporal_client import connect

        resolved = settings or get_settings()
        try:
            client = await connect(resolved)
        except RuntimeError as error:
            raise ServiceUnavailable(
                f"cannot connect to Temporal at {resolved.temporal_target}: {error}",
                code="temporal_unavailable",
            ) from error
        return cls.from_temporal_client(
            client, queue_prefix=resolved.queue_prefix, ui_url=resolved.temporal_ui_url
        )

    @classmethod
    def from_temporal_client(
        cls, client: Client, *, queue_prefix: str = "mahsm", ui_url: str | None = None
    ) -> MahsmClient:
        """A client on an existing `temporalio` client.

        Args:
            client: Must use `temporalio.contrib.pydantic.pydantic_data_converter`.
            queue_prefix: The deployment's `MAHSM_QUEUE_PREFIX`.
            ui_url: Temporal Web UI base URL, for `link`.
        """
        from mahsm.client.temporal_backend import TemporalBackend

        return cls(TemporalBackend(client, queue_prefix=queue_prefix, ui_url=ui_url))

    async def __aenter__(self) -> MahsmClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Release connections."""
        await self._backend.close()

    async def submit(
        self,
        task: TaskRequest | str,
        *,
        user_id: str | None = None,
        plan: Plan | None = None,
        options: TaskOptions | None = None,
        **option_fields: Any,
    ) -> str:
        """Start a task; returns its id at once.

        Args:
            task: A full `TaskRequest`, or just the description.
            user_id: With a description: the user the task belongs to (REST: the API key's).
            plan: With a description: an explicit plan, which skips planning.
            options: With a description: all options.
            **option_fields: With a description: single `TaskOptions` fields, e.g.
                `model="openai/gpt-4o-mini", max_parallel=2, require_approval=True`.

        Raises:
            InvalidRequest: The request breaks the contract.
        """
        if isinstance(task, TaskRequest):
            if user_id is not None or plan is not None or options is not None or option_fields:
                raise TypeError("pass either a TaskRequest or a description with options")
            request = task
        else:
            merged = (options or TaskOptions()).model_dump(exclude_unset=True) | option_fields
            request = TaskRequest(
                description=task,
                user_id=user_id,
                plan=plan,
                options=TaskOptions.model_validate(merged),
            )
        return await self._backend.submit(request)

    async def estimate(
        self,
        task: EstimateRequest | str,
        *,
        plan: Plan | None = None,
        options: TaskOptions | None = None,
        **option_fields: Any,
    ) -> EstimateReport:
        """Expected LLM calls, tokens, cost and duration of a task; nothing runs.

        Args:
            task: A full `EstimateRequest`, or just the description.
            plan: With a description: the plan to estimate; without one the planner is asked
                once (its cost is `planning_usage`).
            options: With a description: all options (model, max_iterations, max_parallel).
            **option_fields: With a description: single `TaskOptions` fields.

        Raises:
            InvalidRequest: The request breaks the contract (the message names the field).
            MahsmError: The planner failed (`estimate_failed`).
        """
        if isinstance(task, EstimateRequest):
            if plan is not None or options is not None or option_fields:
                raise TypeError("pass either an EstimateRequest or a description with options")
            request = task
        else:
            merged = (options or TaskOptions()).model_dump(exclude_unset=True) | option_fields
            request = EstimateRequest(
                description=task, plan=plan, options=TaskOptions.model_validate(merged)
            )
        return await self._backend.estimate(request)

    async def get(self, task_id: str) -> TaskState:
        """The current state of a task.

        Raises:
            TaskNotFound: No such task (or another user's).
        """
        return await self._backend.get(task_id)

    async def wait(
        self,
        task_id: str,
        *,
        on_progress: ProgressCallback | None = None,
        poll_s: float = 0.5,
        timeout_s: float | None = None,
    ) -> TaskState:
        """Follow a task until it ends; returns its final state (completed or not).

        Args:
            task_id: The task.
            on_progress: Called (sync or async) with the first state and each changed one.
            poll_s: Seconds between two reads of the state.
            timeout_s: Give up after this long.

        Raises:
            TimeoutError: `timeout_s` passed first.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        last: TaskState | None = None
        while True:
            state = await self._backend.get(task_id)
            if on_progress is not None and (last is None or state != last):
                outcome = on_progress(state)
                if inspect.isawaitable(outcome):
                    await outcome
            last = state
            if await self._backend.closed(task_id, state):
                return state
            if deadline is not None and loop.time() >= deadline:
                raise TimeoutError(f"task {task_id} still {state.status.value} after {timeout_s}s")
            await asyncio.sleep(poll_s)

    async def live_tokens(self, task_id: str) -> AsyncIterator[TokenChunk]:
        """The live text of the task's running LLM calls, chunk by chunk, until it ends.

        Feed the chunks to a `mahsm.contracts.stream.LiveText` to get each call's text (a
        retried attempt replaces the text of the one before). A preview only: chunks may be
        dropped under load, and the durable outputs are in `get`. REST mode only; in Temporal
        mode nothing is yielded (the chunks travel through the API's database).
        """
        if isinstance(self._backend, RestBackend):
            async for chunk in self._backend.live_tokens(task_id):
                yield chunk

    async def cancel(self, task_id: str) -> None:
        """Ask a running task to stop (idempotent while it runs).

        Raises:
            TaskNotFound: No such task.
            Conflict: The task has already ended.
        """
        await self._backend.cancel(task_id)

    async def approve(self, task_id: str, approved: bool = True, comment: str = "") -> TaskStatus:
        """Approve (or reject, `approved=False`) the plan of a task awaiting approval.

        Returns:
            The status the task moved to.

        Raises:
            Conflict: The task is not awaiting approval.
        """
        decision = ApprovalDecision(approved=approved, comment=comment)
        return await self._backend.approve(task_id, decision)

    async def list(
        self,
        *,
        status: TaskStatus | str | None = None,
        user_id: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> TaskPage:
        """A page of tasks (in REST mode their states carry no subtasks).

        REST mode lists newest first. Temporal mode lists in the order of Temporal's
        visibility store: running tasks first, then ended ones, most recently ended first.

        Args:
            status: Only tasks in this status.
            user_id: Only this user's tasks (with API keys, the API shows only the key's).
            created_after: Only tasks created at or after this time.
            created_before: Only tasks created before this time.
            limit: Page size.
            cursor: `next_cursor` of the previous page.
        """
        return await self._backend.list(
            TaskFilter(
                status=TaskStatus(status) if status is not None else None,
                user_id=user_id,
                created_after=created_after,
                created_before=created_before,
            ),
            limit=limit,
            cursor=cursor,
        )

    async def agents(self) -> AgentPools:
        """The capability pools and their live workers (REST mode only)."""
        return await self._backend.agents()

    def link(self, task_id: str) -> str | None:
        """The task's page in the Temporal Web UI, when this client knows the UI's address."""
        return self._backend.ui_link(task_id)
