"""A workflow for the claim-check tests: an LLM call, a second call and a tool call that
reuse its (large) answer and tool-call arguments, as an agent loop would."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from mahsm.activities.llm.activity import LLMActivities
    from mahsm.activities.tools.activity import ToolActivities
    from mahsm.contracts.llm import ChatMessage, LLMPurpose, LLMRequest, LLMResponse
    from mahsm.contracts.tools import ToolInvocation, ToolOutcome

_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=50), backoff_coefficient=1.0, maximum_attempts=3
)


class LargeAnswerProbe(BaseModel):
    request: LLMRequest
    follow_up_model: str


class LargeAnswerResult(BaseModel):
    first: LLMResponse
    follow_up: LLMResponse
    tool: ToolOutcome


@workflow.defn
class LargeAnswerWorkflow:
    """Call the model, send its answer back (follow-up call) and run its first tool call."""

    @workflow.run
    async def run(self, probe: LargeAnswerProbe) -> LargeAnswerResult:
        first = await self._llm(probe.request)
        assistant = ChatMessage(
            role="assistant",
            content=first.content,
            content_ref=first.content_ref,
            tool_calls=first.tool_calls,
        )
        follow_up = await self._llm(
            probe.request.model_copy(
                update={
                    "model": probe.follow_up_model,
                    "messages": [*probe.request.messages, assistant],
                }
            )
        )
        tool = await workflow.execute_activity_method(
            ToolActivities.execute,
            ToolInvocation(task_id="task-large", subtask_id="s1", call=first.tool_calls[0]),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_RETRY,
        )
        return LargeAnswerResult(first=first, follow_up=follow_up, tool=tool)

    @staticmethod
    async def _llm(request: LLMRequest) -> LLMResponse:
        return await workflow.execute_activity_method(
            LLMActivities.complete,
            request.model_copy(update={"purpose": LLMPurpose.AGENT_STEP}),
            start_to_close_timeout=timedelta(seconds=90),
            heartbeat_timeout=timedelta(seconds=10),
            retry_policy=_RETRY,
        )
