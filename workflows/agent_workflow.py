"""`AgentWorkflow`: one subtask worked by an LLM with tools, in a loop."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.llm.activity import LLMActivities
    from activities.tools.activity import ToolActivities
    from activities.tools.registry import specs_for
    from mahsm.contracts.engine import AgentInput, AgentResult, AgentTranscript
    from mahsm.contracts.llm import ChatMessage, LLMPurpose, LLMRequest, ToolCall
    from mahsm.contracts.task import Usage
    from mahsm.contracts.tools import ToolInvocation, ToolOutcome
    from workflows import prompts
    from workflows.payloads import fit_messages, store_text
    from workflows.retry import LLM_RETRY, TOOL_RETRY

_TRANSCRIPT_INLINE_BYTES = 128 * 1024
_TOOL_TIMEOUT_MARGIN_S = 10.0


@workflow.defn(name="AgentWorkflow")
class AgentWorkflow:
    """The agentic loop: LLM step, tool calls run concurrently, repeat until a final answer."""

    @workflow.run
    async def run(self, request: AgentInput) -> AgentResult:
        """Work the subtask; fails with `MaxIterationsReached` or `BudgetExceeded`."""
        messages = request.messages or self._opening(request)
        usage, agent = request.usage, request.agent
        tools = specs_for(request.subtask.required_capabilities)
        for iteration in range(request.iteration, request.max_iterations):
            # Continue-as-new well before Temporal's history limits (50k events / 50 MB).
            if self._history_is_long(request.history_events_limit):
                workflow.continue_as_new(
                    request.model_copy(
                        update={
                            "messages": messages,
                            "iteration": iteration,
                            "usage": usage,
                            "agent": agent,
                        }
                    )
                )
            await fit_messages(messages)
            response = await workflow.execute_activity_method(
                LLMActivities.complete,
                LLMRequest(
                    model=request.model,
                    purpose=LLMPurpose.AGENT_STEP,
                    messages=messages,
                    tools=tools,
                    task_id=request.task_id,
                    subtask_id=request.subtask.id,
                ),
                start_to_close_timeout=timedelta(seconds=request.llm_timeout_s),
                heartbeat_timeout=timedelta(seconds=min(60.0, request.llm_timeout_s)),
                retry_policy=LLM_RETRY,
                summary=f"LLM step {iteration + 1}: {request.subtask.id}",
            )
            usage = usage + response.usage
            agent = agent or response.worker
            self._check_budget(request, usage)
            messages.append(
                ChatMessage(
                    role="assistant", content=response.content, tool_calls=response.tool_calls
                )
            )
            if not response.tool_calls:
                return await self._result(
                    answer=response.content or "",
                    messages=messages,
                    usage=usage,
                    iterations=iteration + 1,
                    agent=agent,
                )
            outcomes = await asyncio.gather(
                *(self._run_tool(request, call) for call in response.tool_calls)
            )
            messages.extend(
                ChatMessage(
                    role="tool",
                    content=o.content,
                    content_ref=o.content_ref,
                    tool_call_id=o.tool_call_id,
                    name=o.name,
                    is_error=o.is_error,
                )
                for o in outcomes
            )
        raise ApplicationError(
            f"subtask '{request.subtask.id}' reached max_iterations ({request.max_iterations})"
            " without a final answer; raise options.max_iterations or simplify the subtask",
            usage.model_dump(),
            type="MaxIterationsReached",
            non_retryable=True,
        )

    @staticmethod
    def _opening(request: AgentInput) -> list[ChatMessage]:
        messages = [
            ChatMessage(role="system", content=prompts.AGENT_SYSTEM),
            ChatMessage(
                role="user",
                content=prompts.agent_user(request.task_description, request.subtask.description),
            ),
        ]
        for dependency in request.dependencies:
            messages.append(
                ChatMessage(role="user", content=prompts.dependency_context(dependency))
            )
            if dependency.output_ref is not None:
                messages.append(ChatMessage(role="user", content_ref=dependency.output_ref))
        return messages

    @staticmethod
    def _history_is_long(limit: int) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() > limit

    @staticmethod
    def _check_budget(request: AgentInput, usage: Usage) -> None:
        if request.budget is None:
            return
        reason = request.budget.exceeded_by(request.usage_before + usage)
        if reason:
            raise ApplicationError(
                f"subtask '{request.subtask.id}' stopped: {reason}",
                usage.model_dump(),
                type="BudgetExceeded",
                non_retryable=True,
            )

    @staticmethod
    async def _run_tool(request: AgentInput, call: ToolCall) -> ToolOutcome:
        return await workflow.execute_activity_method(
            ToolActivities.execute,
            ToolInvocation(
                task_id=request.task_id,
                subtask_id=request.subtask.id,
                call=call,
                capabilities=request.subtask.required_capabilities,
            ),
            # Above the tool's own limit, so a slow tool reports "did not finish" to the
            # model instead of being retried by Temporal.
            start_to_close_timeout=timedelta(
                seconds=request.tool_timeout_s + _TOOL_TIMEOUT_MARGIN_S
            ),
            retry_policy=TOOL_RETRY,
            summary=f"tool {call.name}",
        )

    @staticmethod
    async def _result(
        *,
        answer: str,
        messages: list[ChatMessage],
        usage: Usage,
        iterations: int,
        agent: str | None,
    ) -> AgentResult:
        result = AgentResult(
            answer=answer,
            transcript=messages,
            usage=usage,
            iterations=iterations,
            agent=agent,
        )
        serialized = result.model_dump_json()
        if len(serialized) > _TRANSCRIPT_INLINE_BYTES:
            ref = await store_text(AgentTranscript(messages=messages).model_dump_json())
            result = result.model_copy(update={"transcript": [], "transcript_ref": ref})
        return result
