"""`GET /tasks/{task_id}/subtasks/{subtask_id}/transcript`: what a subtask's agent said and did."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from temporalio.service import RPCError

from mahsm.api.auth import CallerDep, authenticate
from mahsm.api.dashboard_schemas import TranscriptView
from mahsm.api.deps import ApiError, BackendsDep
from mahsm.api.read_model import read_blob_text
from mahsm.api.routes.tasks import TaskId, error_responses
from mahsm.api.task_access import find_task, raise_unavailable
from mahsm.api.text_guard import reject_unstorable_params
from mahsm.api.transcript import read_transcript

router = APIRouter(
    prefix="/tasks",
    tags=["tasks"],
    dependencies=[Depends(authenticate), Depends(reject_unstorable_params)],
    responses=error_responses(401, 422, 503),
)

SubtaskId = Annotated[
    str, Path(min_length=1, max_length=200, description="a subtask id of the task's plan")
]


@router.get(
    "/{task_id}/subtasks/{subtask_id}/transcript",
    response_model=TranscriptView,
    responses=error_responses(404),
)
async def get_transcript(
    task_id: TaskId, subtask_id: SubtaskId, caller: CallerDep, backends: BackendsDep
) -> TranscriptView:
    """The agent's conversation: messages, tool calls with arguments, tool results, errors.

    Read from the Temporal history of the task (and of the agent's child workflow, if it moved
    to one); `available` is false once Temporal's retention has dropped the workflow.
    """
    detail = await find_task(backends, task_id, caller)
    if subtask_id not in {s.id for s in detail.subtask_results}:
        raise ApiError(
            404,
            code="subtask_not_found",
            message=f"Task '{task_id}' has no subtask '{subtask_id}'; its subtasks are listed"
            " by GET /tasks/{task_id}.",
            details={"task_id": task_id, "subtask_id": subtask_id},
        )
    try:
        client = await backends.temporal()
        pool = await backends.pool()
        return await read_transcript(
            client, task_id, subtask_id, blobs=lambda blob_id: read_blob_text(pool, blob_id)
        )
    except RPCError as error:
        raise_unavailable(error)
