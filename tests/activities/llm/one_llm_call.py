"""Runs one `llm_complete` call through a real worker (`OneLLMCallWorkflow`) for a test."""

from __future__ import annotations

import uuid
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from mahsm.activities.llm.activity import LLMActivities
from mahsm.contracts.llm import LLMRequest
from mahsm.settings import Settings
from tests.activities.llm.llm_test_workflow import OneLLMCallWorkflow


async def run_one_call(
    env: WorkflowEnvironment,
    settings: Settings,
    task_queue: str,
    request: LLMRequest,
    *,
    id_prefix: str = "llm-test",
) -> tuple[Any, str]:
    """The workflow's response (or its `WorkflowFailureError`) and the workflow's id."""
    llm = LLMActivities(settings=settings, blobs=None)
    workflow_id = f"{id_prefix}-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client, task_queue=task_queue, workflows=[OneLLMCallWorkflow], activities=[llm.complete]
    ):
        try:
            result: Any = await env.client.execute_workflow(
                OneLLMCallWorkflow.run, request, id=workflow_id, task_queue=task_queue
            )
        except WorkflowFailureError as failure:
            result = failure
    return result, workflow_id


async def activity_attempts(env: WorkflowEnvironment, workflow_id: str) -> list[int]:
    """The attempt number of each start of the workflow's activity, in order."""
    history = await env.client.get_workflow_handle(workflow_id).fetch_history()
    return [
        event.activity_task_started_event_attributes.attempt
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
