"""`/optimizations`: start an optimization run (`OptimizeWorkflow`) and read its progress."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel
from temporalio.service import RPCError, RPCStatusCode

from mahsm.api.auth import authenticate
from mahsm.api.deps import ApiError, SettingsDep, TemporalClientDep
from mahsm.api.json_body import Utf8JsonRoute
from mahsm.api.routes.tasks import error_responses
from mahsm.api.text_guard import reject_unstorable_params
from mahsm.optimize.models import OptimizeRequest, OptimizeState
from mahsm.queues import tasks_queue

router = APIRouter(
    tags=["optimizations"],
    route_class=Utf8JsonRoute,
    dependencies=[Depends(authenticate), Depends(reject_unstorable_params)],
)

RunId = Annotated[str, Path(pattern=r"^optimize-[A-Za-z0-9_.\-]{1,120}$")]


class OptimizationAccepted(BaseModel):
    """A started run; poll `GET /optimizations/{id}`."""

    id: str


@router.post("/optimizations", status_code=202, responses=error_responses(400, 401, 413, 422, 503))
async def start_optimization(
    body: OptimizeRequest, client: TemporalClientDep, settings: SettingsDep
) -> OptimizationAccepted:
    """Start an optimization run on the workers (BootstrapFewShot; see docs/dspy.md)."""
    run_id = f"optimize-{uuid.uuid4()}"
    try:
        await client.start_workflow(
            "OptimizeWorkflow", body, id=run_id, task_queue=tasks_queue(settings.queue_prefix)
        )
    except RPCError as error:
        raise ApiError(503, code="temporal_unavailable", message=str(error)) from None
    return OptimizationAccepted(id=run_id)


@router.get("/optimizations/{run_id}", responses=error_responses(401, 404, 422, 503))
async def optimization_state(run_id: RunId, client: TemporalClientDep) -> OptimizeState:
    """Progress (evaluations done / planned, best score) and, once done, the saved artifact."""
    try:
        state = await client.get_workflow_handle(run_id).query("state")
        return OptimizeState.model_validate(state)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(
                404, code="optimization_not_found", message=f"no optimization run '{run_id}'"
            ) from None
        raise ApiError(503, code="temporal_unavailable", message=str(error)) from None
