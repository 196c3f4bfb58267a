"""A minimal workflow that makes one `llm_complete` call with a retry policy."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from mahsm.activities.llm.activity import LLMActivities
    from mahsm.contracts.llm import LLMRequest, LLMResponse


@workflow.defn
class OneLLMCallWorkflow:
    """Calls `llm_complete` once; Temporal retries it up to 5 attempts, 50 ms apart."""

    @workflow.run
    async def run(self, request: LLMRequest) -> LLMResponse:
        return await workflow.execute_activity_method(
            LLMActivities.complete,
            request,
            start_to_close_timeout=timedelta(seconds=20),
            heartbeat_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=50),
                backoff_coefficient=1.0,
                maximum_attempts=5,
            ),
        )
