"""The REST mode of `MahsmClient`: every call is one request to the MAHSM API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from mahsm.client.errors import (
    AuthError,
    Conflict,
    InvalidRequest,
    MahsmError,
    ServiceUnavailable,
    TaskNotFound,
)
from mahsm.client.models import (
    AgentPools,
    PipelinePage,
    PipelineRun,
    RegisteredPipeline,
    TaskFilter,
    TaskPage,
    task_state_from_api,
)
from mahsm.contracts.estimate import EstimateReport, EstimateRequest
from mahsm.contracts.pipeline import Pipeline
from mahsm.contracts.stream import TOKENS_EVENT, TokenChunk
from mahsm.contracts.task import ApprovalDecision, TaskRequest, TaskState, TaskStatus

_ERRORS: dict[int, type[MahsmError]] = {
    401: AuthError,
    403: AuthError,
    404: TaskNotFound,
    409: Conflict,
    422: InvalidRequest,
    502: ServiceUnavailable,
    503: ServiceUnavailable,
    504: ServiceUnavailable,
}


class RestBackend:
    """Talks to the API at `base_url`.

    Args:
        base_url: e.g. "http://127.0.0.1:8000".
        api_key: Sent as `Authorization: Bearer <key>` when set.
        timeout_s: Timeout of each request.
        transport: An httpx transport (tests, proxies); the default opens TCP connections.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=timeout_s, transport=transport
        )
        self._links: dict[str, str] = {}

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise ServiceUnavailable(
                f"cannot reach the MAHSM API at {self.base_url}: {error or type(error).__name__}."
                " Is it running (`mahsm up`)? Set the address with --api or MAHSM_API_URL.",
                code="api_unreachable",
            ) from error
        if response.is_success:
            return response.json() if response.content else None
        raise _error(response)

    async def submit(self, request: TaskRequest) -> str:
        """POST /tasks; returns the task id."""
        return await self._start(request.model_dump(mode="json", exclude_none=True))

    async def estimate(self, request: EstimateRequest) -> EstimateReport:
        """POST /tasks/estimate (it may wait for one planner call: no request timeout)."""
        body = request.model_dump(mode="json", exclude_none=True)
        answer = await self._call("POST", "/tasks/estimate", json=body, timeout=None)
        return EstimateReport.model_validate(answer)

    async def submit_pipeline(self, run: PipelineRun) -> str:
        """POST /tasks with `pipeline` or `pipeline_ref` and `inputs`; returns the task id."""
        return await self._start(run.model_dump(mode="json", exclude_none=True))

    async def register_pipeline(self, pipeline: Pipeline) -> RegisteredPipeline:
        """POST /pipelines."""
        body = pipeline.model_dump(mode="json", exclude_none=True)
        return RegisteredPipeline.model_validate(await self._call("POST", "/pipelines", json=body))

    async def get_pipeline(self, ref: str) -> RegisteredPipeline:
        """GET /pipelines/{name} or /pipelines/{name}@{version}."""
        return RegisteredPipeline.model_validate(await self._call("GET", f"/pipelines/{ref}"))

    async def list_pipelines(self, *, limit: int, cursor: str | None) -> PipelinePage:
        """GET /pipelines."""
        params: dict[str, str | int] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        return PipelinePage.model_validate(await self._call("GET", "/pipelines", params=params))

    async def _start(self, body: dict[str, Any]) -> str:
        body = await self._call("POST", "/tasks", json=body)
        task_id = str(body["task_id"])
        link = (body.get("links") or {}).get("temporal_ui")
        if link:
            self._links[task_id] = str(link)
        return task_id

    async def get(self, task_id: str) -> TaskState:
        """GET /tasks/{id}."""
        body = await self._call("GET", f"/tasks/{task_id}")
        return task_state_from_api(body["task"], body.get("subtask_results") or [])

    async def cancel(self, task_id: str) -> None:
        """POST /tasks/{id}/cancel."""
        await self._call("POST", f"/tasks/{task_id}/cancel")

    async def approve(self, task_id: str, decision: ApprovalDecision) -> TaskStatus:
        """POST /tasks/{id}/approve; returns the status the task moved to."""
        body = await self._call(
            "POST", f"/tasks/{task_id}/approve", json=decision.model_dump(mode="json")
        )
        return TaskStatus(body["status"])

    async def list(self, filters: TaskFilter, *, limit: int, cursor: str | None) -> TaskPage:
        """GET /tasks with filters."""
        params: dict[str, str | int] = {"limit": limit}
        for name, value in filters.model_dump(mode="json", exclude_none=True).items():
            params[name] = value
        if cursor is not None:
            params["cursor"] = cursor
        body = await self._call("GET", "/tasks", params=params)
        return TaskPage(
            tasks=[task_state_from_api(task, []) for task in body.get("tasks") or []],
            next_cursor=body.get("next_cursor"),
        )

    async def agents(self) -> AgentPools:
        """GET /agents."""
        return AgentPools.model_validate(await self._call("GET", "/agents"))

    async def live_tokens(self, task_id: str) -> AsyncIterator[TokenChunk]:
        """The live text chunks of the task's running LLM calls, until the task ends.

        Reads `GET /tasks/{id}/events?tokens=true` and keeps only its `llm_tokens` events.
        """
        path = f"/tasks/{task_id}/events"
        async with self._http.stream("GET", path, params={"tokens": "true"}) as response:
            if not response.is_success:
                await response.aread()
                raise _error(response)
            event = ""
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event = line.removeprefix("event:").strip()
                elif line.startswith("data:") and event == TOKENS_EVENT:
                    yield TokenChunk.model_validate_json(line.removeprefix("data:").strip())
                elif event == "task_ended":
                    return
                elif not line:
                    event = ""

    async def closed(self, task_id: str, state: TaskState) -> bool:
        """Whether the task can no longer change (the API reports final statuses)."""
        return state.status.is_terminal

    def ui_link(self, task_id: str) -> str | None:
        """The Temporal UI page of a task this client submitted (the API's link), else None."""
        return self._links.get(task_id)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()


def _error(response: httpx.Response) -> MahsmError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "message" in body:
        message, code, details = str(body["message"]), body.get("code"), body.get("details")
    else:
        message = f"HTTP {response.status_code}: {response.text[:500] or response.reason_phrase}"
        code, details = None, None
    kind = _ERRORS.get(response.status_code, MahsmError)
    return kind(message, code=code, status=response.status_code, details=details)
