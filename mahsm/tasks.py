"""Starting a task: the one place that knows how `TaskWorkflow` is launched.

Used by the API and by `MahsmClient`'s direct-Temporal mode. The workflow contract is public:
starting `TaskWorkflow` (by name, on `<prefix>-tasks`, id `task-<uuid>`, input `TaskRequest`)
with the plain Temporal SDK works the same.
"""

from __future__ import annotations

import uuid
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.service import RPCError

from mahsm import search_attributes
from mahsm.contracts.task import TaskRequest, TaskState, TaskStatus
from mahsm.queues import tasks_queue

TASK_WORKFLOW = "TaskWorkflow"


def new_task_id() -> str:
    """A fresh task id; it is also the workflow id."""
    return f"task-{uuid.uuid4()}"


def temporal_ui_link(ui_url: str, namespace: str, task_id: str) -> str:
    """The task's page in the Temporal Web UI."""
    return f"{ui_url.rstrip('/')}/namespaces/{namespace}/workflows/{task_id}"


def _model_text(model: str | list[str] | None) -> str:
    if model is None:
        return "the worker default (shown in the task details)"
    return model if isinstance(model, str) else " then ".join(model) + " (fallback chain)"


def _details(request: TaskRequest) -> str:
    options = request.options
    lines = [
        f"**Task** {request.description[:1000]}",
        f"- user: {request.user_id or '-'}",
        f"- model: {_model_text(options.model)}",
        f"- max parallel: {options.max_parallel or 'every ready subtask'},"
        f" max iterations: {options.max_iterations}",
        f"- approval required: {'yes' if options.require_approval else 'no'}",
    ]
    if request.plan is not None:
        lines.append(f"- explicit plan: {len(request.plan.subtasks)} subtasks")
    if request.pipeline is not None:
        version = f"@{request.pipeline.version}" if request.pipeline.version else ""
        inputs = ", ".join(sorted(request.inputs)) or "none"
        lines.append(
            f"- pipeline: {request.pipeline.name}{version}, {len(request.pipeline.steps)} steps,"
            f" inputs: {inputs}"
        )
    return "\n".join(lines)


async def start_task(
    client: Client,
    request: TaskRequest,
    *,
    queue_prefix: str,
    task_id: str | None = None,
) -> WorkflowHandle[Any, TaskState]:
    """Start `TaskWorkflow` for `request`; returns its handle at once.

    The UI search attributes are set when the server knows them; a server without them
    (a cluster whose operator has not registered them) still runs the task.
    """
    attributes = [SearchAttributePair(search_attributes.TASK_STATUS, TaskStatus.PENDING.value)]
    if request.user_id:
        attributes.append(SearchAttributePair(search_attributes.USER_ID, request.user_id))
    kwargs: dict[str, Any] = {
        "id": task_id or new_task_id(),
        "task_queue": tasks_queue(queue_prefix),
        "id_reuse_policy": WorkflowIDReusePolicy.REJECT_DUPLICATE,
        "static_summary": request.description[:200],
        "static_details": _details(request),
        "result_type": TaskState,
    }
    try:
        return await client.start_workflow(
            TASK_WORKFLOW,
            request,
            search_attributes=TypedSearchAttributes(attributes),
            **kwargs,
        )
    except RPCError as error:
        if "search attribute" not in error.message.lower():
            raise
        return await client.start_workflow(TASK_WORKFLOW, request, **kwargs)
