"""`/experiments`: start an experiment (`ExperimentWorkflow`), read it, follow it, serve it.

Everything an experiment holds lives in its workflow (queried live and after it ends); the
list comes from Temporal's visibility store. See docs/experiments.md.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, ValidationError
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from mahsm.api.auth import authenticate
from mahsm.api.deps import ApiError, BackendsDep, SettingsDep, TemporalClientDep, invalid
from mahsm.api.json_body import Utf8JsonRoute
from mahsm.api.pipeline_checks import pipeline_problems
from mahsm.api.pipeline_runs import resolve_ref
from mahsm.api.routes.datasets import resolve_dataset
from mahsm.api.routes.tasks import error_responses
from mahsm.api.text_guard import reject_unstorable_params
from mahsm.experiments.apply import branch_request
from mahsm.experiments.models import (
    ExperimentRequest,
    ExperimentState,
    ServeRequest,
    ServeResult,
)
from mahsm.queues import tasks_queue

router = APIRouter(
    prefix="/experiments",
    tags=["experiments"],
    route_class=Utf8JsonRoute,
    dependencies=[Depends(authenticate), Depends(reject_unstorable_params)],
)

ExperimentId = Annotated[str, Path(pattern=r"^experiment-[A-Za-z0-9_.\-]{1,120}$")]
WORKFLOW_TYPE = "ExperimentWorkflow"


class ExperimentAccepted(BaseModel):
    """A started experiment; follow it with `GET /experiments/{id}` or `/events`."""

    id: str
    configs: list[str] = Field(description="config ids, in config order")


class ExperimentItem(BaseModel):
    """One experiment in the list."""

    id: str
    name: str | None = None
    strategy: str | None = None
    status: str
    started_at: str | None = None
    configs: int | None = Field(
        default=None, description="how many configs it compares (unknown for older ones)"
    )


class ExperimentPage(BaseModel):
    """Experiments, newest first."""

    experiments: list[ExperimentItem]


def _revalidated(data: dict[str, Any]) -> ExperimentRequest:
    try:
        return ExperimentRequest.model_validate(data)
    except ValidationError as error:
        errors = error.errors()
        raise invalid(
            [{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in errors]
        ) from None


async def _resolved(body: ExperimentRequest, backends: BackendsDep) -> ExperimentRequest:
    """Registered parts resolved: `dataset_ref` to rows, `target.pipeline_ref` to a pipeline.

    Every config is checked against the resolved pipeline.
    """
    if body.dataset_ref is not None:
        registered = await resolve_dataset(await backends.pool(), body.dataset_ref)
        body = _revalidated(
            {**body.model_dump(exclude={"grid", "dataset_ref"}), "dataset": registered}
        )
    if body.target.pipeline_ref is None:
        return body
    pipeline = await resolve_ref(backends, body.target.pipeline_ref)
    target = body.target.model_copy(update={"pipeline": pipeline, "pipeline_ref": None})
    try:
        request = ExperimentRequest.model_validate(
            {**body.model_dump(exclude={"target", "grid"}), "target": target.model_dump()}
        )
    except ValidationError as error:
        errors = error.errors()
        raise invalid(
            [{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in errors]
        ) from None
    rows = [row.inputs for row in request.dataset or []] or [{}]
    for index, config in enumerate(request.configs):
        task = branch_request(request, config, rows[0])
        assert task.pipeline is not None
        found = pipeline_problems(
            task.pipeline, task.inputs, at=["body", "configs", index], inputs_at=["body"]
        )
        if found:
            raise invalid(found)
    return request


@router.post("", status_code=202, responses=error_responses(400, 401, 413, 422, 503))
async def start_experiment(
    body: ExperimentRequest,
    client: TemporalClientDep,
    settings: SettingsDep,
    backends: BackendsDep,
) -> ExperimentAccepted:
    """Start an experiment: configs checked first (422 naming the config index and field)."""
    if body.carried_state is not None:  # only continue-as-new sets it
        raise invalid(
            [{"loc": ["body", "carried_state"], "msg": "set by the workflow itself; leave it out"}]
        )
    request = await _resolved(body, backends)
    experiment_id = f"experiment-{uuid.uuid4()}"
    try:
        await client.start_workflow(
            WORKFLOW_TYPE,
            request,
            id=experiment_id,
            task_queue=tasks_queue(settings.queue_prefix),
            memo={
                "name": request.name,
                "strategy": str(request.strategy),
                "configs": len(request.configs),
            },
        )
    except RPCError as error:
        raise ApiError(503, code="temporal_unavailable", message=str(error)) from None
    return ExperimentAccepted(id=experiment_id, configs=[c.config_id for c in request.configs])


@router.get("", responses=error_responses(401, 422, 503))
async def list_experiments(
    client: TemporalClientDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ExperimentPage:
    """Experiments of this deployment, newest first (from Temporal's visibility store)."""
    query = (
        f"WorkflowType = '{WORKFLOW_TYPE}' AND TaskQueue = '{tasks_queue(settings.queue_prefix)}'"
    )
    items: list[ExperimentItem] = []
    try:
        async for execution in client.list_workflows(query, limit=limit):
            memo = await execution.memo()
            configs = memo.get("configs")
            items.append(
                ExperimentItem(
                    id=execution.id,
                    name=memo.get("name"),
                    strategy=memo.get("strategy"),
                    status=execution.status.name.lower() if execution.status else "unknown",
                    started_at=execution.start_time.isoformat(),
                    configs=configs if isinstance(configs, int) else None,
                )
            )
    except RPCError as error:
        raise ApiError(503, code="temporal_unavailable", message=str(error)) from None
    return ExperimentPage(experiments=items)


async def _state(client: TemporalClientDep, experiment_id: str) -> ExperimentState:
    try:
        raw: Any = await client.get_workflow_handle(experiment_id).query("state")
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(
                404,
                code="experiment_not_found",
                message=f"no experiment '{experiment_id}'; list them with GET /experiments",
            ) from None
        raise ApiError(503, code="temporal_unavailable", message=str(error)) from None
    return ExperimentState.model_validate(raw)


@router.get("/{experiment_id}", responses=error_responses(401, 404, 422, 503))
async def get_experiment(experiment_id: ExperimentId, client: TemporalClientDep) -> ExperimentState:
    """Branches, the per-config summary and the winner (once done), MLflow sync status."""
    return await _state(client, experiment_id)


@router.get("/{experiment_id}/events", responses=error_responses(401, 404, 422, 503))
async def experiment_events(
    experiment_id: ExperimentId, client: TemporalClientDep
) -> StreamingResponse:
    """Server-sent events: the state each time it changes, until the experiment ends."""
    first = await _state(client, experiment_id)

    async def stream() -> AsyncIterator[str]:
        state, seen = first, None
        while True:
            if state.updated_at != seen or state.status != "running":
                seen = state.updated_at
                yield f"event: state\ndata: {state.model_dump_json()}\n\n"
            if state.status != "running":
                yield "event: end\ndata: {}\n\n"
                return
            await asyncio.sleep(0.5)
            state = await _state(client, experiment_id)

    return StreamingResponse(stream(), media_type="text/event-stream")


@router.post(
    "/{experiment_id}/requests", responses=error_responses(400, 401, 404, 409, 413, 422, 503)
)
async def serve_request(
    experiment_id: ExperimentId, body: ServeRequest, client: TemporalClientDep
) -> ServeResult:
    """Round robin: serve one request with the next config; answers that branch."""
    handle = client.get_workflow_handle(experiment_id)
    try:
        raw: Any = await handle.execute_update("serve", body, result_type=ServeResult)
    except WorkflowUpdateFailedError as error:
        raise ApiError(409, code="not_serving", message=str(error.cause or error)) from None
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(
                404, code="experiment_not_found", message=f"no experiment '{experiment_id}'"
            ) from None
        raise ApiError(503, code="temporal_unavailable", message=str(error)) from None
    return ServeResult.model_validate(raw)


@router.post(
    "/{experiment_id}/close", status_code=202, responses=error_responses(401, 404, 422, 503)
)
async def close_experiment(experiment_id: ExperimentId, client: TemporalClientDep) -> None:
    """Round robin: stop serving; the summary and MLflow logging follow."""
    try:
        await client.get_workflow_handle(experiment_id).signal("close")
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(
                404, code="experiment_not_found", message=f"no experiment '{experiment_id}'"
            ) from None
        raise ApiError(503, code="temporal_unavailable", message=str(error)) from None
