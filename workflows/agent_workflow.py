"""`AgentWorkflow`: an agent loop in a workflow of its own.

Most agents run inline in their task's workflow (`workflows/graph_runner.py`). A task moves
an agent into this child workflow when the task's history reaches its inline bound, and
histories recorded before inline agents ran every agent here.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from mahsm.activities.llm.activity import LLMActivities
    from mahsm.activities.tools.activity import ToolActivities
    from mahsm.contracts.engine import AgentInput, AgentResult
    from mahsm.contracts.llm import LLMRequest, LLMResponse
    from mahsm.contracts.task import Usage
    from mahsm.contracts.tools import ToolInvocation, ToolOutcome
    from mahsm.workflows.agent_loop import budget_stop, run_agent_loop
    from mahsm.workflows.model_fallback import serve_on_chain
    from mahsm.workflows.retry import LLM_RETRY, TOOL_RETRY, llm_heartbeat_timeout

TOOL_TIMEOUT_MARGIN_S = 10.0


@workflow.defn(name="AgentWorkflow")
class AgentWorkflow:
    """The agentic loop, continuing as new before its history grows long."""

    @workflow.run
    async def run(self, request: AgentInput) -> AgentResult:
        """Work the subtask; fails with `MaxIterationsReached` or `BudgetExceeded`."""
        return await run_agent_loop(request, _ChildSteps(request))


class _ChildSteps:
    """Calls on this workflow's own queue; budget seen as the task's usage at the start."""

    keeps_transcript = True

    def __init__(self, request: AgentInput) -> None:
        self._request = request

    def before_iteration(self, progress: AgentInput) -> None:
        # Continue-as-new well before Temporal's history limits (50k events / 50 MB).
        info = workflow.info()
        if (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() > progress.history_events_limit
        ):
            workflow.continue_as_new(progress)

    async def llm(self, request: LLMRequest, *, iteration: int) -> LLMResponse:
        summary = f"LLM step {iteration + 1}: {self._request.subtask.id}"
        if not request.fallback:
            return await self._complete(request, summary, LLM_RETRY)
        # The chain of the task's agent goes on here: each model its own activity. The
        # child's own run timeout bounds the whole chain; its notes go to the worker log.
        attempts = self._request.fallback_attempts
        return await serve_on_chain(
            request,
            attempt=lambda single, suffix, _left_s, retry: self._complete(
                single, f"{summary} ({single.model})" if suffix else summary, retry
            ),
            note=lambda text: workflow.logger.info(text),
            ends_call=lambda _error: False,
            attempts=attempts,
            summary=summary,
            total_s=self._request.llm_timeout_s * attempts * (1 + len(request.fallback)),
        )

    async def _complete(self, request: LLMRequest, summary: str, retry: RetryPolicy) -> LLMResponse:
        return await workflow.execute_activity_method(
            LLMActivities.complete,
            request,
            start_to_close_timeout=timedelta(seconds=self._request.llm_timeout_s),
            heartbeat_timeout=llm_heartbeat_timeout(self._request.llm_timeout_s),
            retry_policy=retry,
            summary=summary,
        )

    def after_llm(self, usage: Usage) -> None:
        budget = self._request.budget
        reason = budget.exceeded_by(self._request.usage_before + usage) if budget else None
        if reason:
            raise budget_stop(self._request, reason, usage)

    async def tool(self, invocation: ToolInvocation, *, iteration: int, index: int) -> ToolOutcome:
        return await workflow.execute_activity_method(
            ToolActivities.execute,
            invocation,
            # Above the tool's own limit, so a slow tool reports "did not finish" to the
            # model instead of being retried by Temporal.
            start_to_close_timeout=timedelta(
                seconds=self._request.tool_timeout_s + TOOL_TIMEOUT_MARGIN_S
            ),
            retry_policy=TOOL_RETRY,
            summary=f"tool {invocation.call.name}",
        )
