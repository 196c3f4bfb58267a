"""The agent loop: LLM step, tool calls run concurrently, repeat until a final answer.

One loop for both places an agent runs: inline in its task's workflow (`InlineAgentSteps` in
`workflows/graph_runner.py`) and in a child `AgentWorkflow`. Where the calls go, how the
budget is checked and when the loop must move to a fresh history are the `AgentSteps` of
each place.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from mahsm.activities.tools.registry import specs_for
    from mahsm.contracts.engine import AgentInput, AgentResult, AgentTranscript
    from mahsm.contracts.llm import (
        ChatMessage,
        LLMPurpose,
        LLMRequest,
        LLMResponse,
        ToolCall,
        ToolSpec,
    )
    from mahsm.contracts.task import BlobRef, Usage
    from mahsm.contracts.tools import ToolInvocation, ToolOutcome
    from mahsm.workflows import prompts, spans
    from mahsm.workflows.payloads import fit_messages, store_text

_TRANSCRIPT_INLINE_BYTES = 128 * 1024


class AgentSteps(Protocol):
    """What differs between an inline agent and an agent in its own workflow."""

    def before_iteration(self, progress: AgentInput) -> None:
        """Called at the top of every iteration; may move the loop elsewhere (by raising)."""

    async def llm(self, request: LLMRequest, *, iteration: int) -> LLMResponse:
        """Run one LLM call of the loop."""
        ...

    def after_llm(self, usage: Usage) -> None:
        """Check the budget after a call; `usage` is the agent's total so far."""

    async def tool(self, invocation: ToolInvocation, *, iteration: int, index: int) -> ToolOutcome:
        """Run one tool call of the loop."""
        ...

    @property
    def keeps_transcript(self) -> bool:
        """Whether the result carries the conversation (a child returns it to its parent)."""
        ...


def opening_messages(request: AgentInput) -> list[ChatMessage]:
    """The conversation an agent starts with: instructions, subtask, dependencies' outputs."""
    messages = [ChatMessage(role="system", content=prompts.AGENT_SYSTEM)]
    if request.instructions:  # a prompt artifact's, after the engine's own
        messages.append(ChatMessage(role="system", content=request.instructions))
    messages += [
        ChatMessage(
            role="user",
            content=prompts.agent_user(request.task_description, request.subtask.description),
        ),
    ]
    for dependency in request.dependencies:
        messages.append(ChatMessage(role="user", content=prompts.dependency_context(dependency)))
        if dependency.output_ref is not None:
            messages.append(ChatMessage(role="user", content_ref=dependency.output_ref))
    return messages


async def run_agent_loop(request: AgentInput, steps: AgentSteps) -> AgentResult:
    """Work the subtask; fails with `MaxIterationsReached` or `BudgetExceeded`.

    `request.messages`, `iteration`, `usage` and `agent` resume a loop that moved (across
    continue-as-new, or from a task's workflow into a child).
    """
    messages = request.messages or opening_messages(request)
    usage, agent = request.usage, request.agent
    tools = [] if request.tool_capabilities_only else _default_tool_specs(request)
    for iteration in range(request.iteration, request.max_iterations):
        progress = {"messages": messages, "iteration": iteration, "usage": usage, "agent": agent}
        steps.before_iteration(request.model_copy(update=progress))  # may hand the loop off
        attributes: dict[str, str | int] = {
            "mahsm.task_id": request.task_id,
            "mahsm.subtask_id": request.subtask.id,
            "mahsm.agent.iteration": iteration,
        }
        with spans.span(f"agent iteration {iteration + 1}", attributes):
            await fit_messages(messages, count_arguments=request.tool_capabilities_only)
            response = await steps.llm(
                LLMRequest(
                    model=request.model,
                    fallback=request.fallback,
                    middleware=request.middleware,
                    side_effects=request.side_effects,
                    purpose=LLMPurpose.AGENT_STEP,
                    messages=messages,
                    tools=tools,
                    tool_capabilities=(
                        request.subtask.required_capabilities
                        if request.tool_capabilities_only
                        else None
                    ),
                    task_id=request.task_id,
                    subtask_id=request.subtask.id,
                ),
                iteration=iteration,
            )
            usage = usage + response.usage
            agent = agent or response.worker
            steps.after_llm(usage)
            messages.append(
                ChatMessage(
                    role="assistant",
                    content=response.content,
                    content_ref=response.content_ref,
                    tool_calls=response.tool_calls,
                )
            )
            if not response.tool_calls:
                return await _result(
                    answer=response.content or "",
                    answer_ref=response.content_ref,
                    messages=messages if steps.keeps_transcript else [],
                    usage=usage,
                    iterations=iteration + 1,
                    agent=agent,
                )
            outcomes = await asyncio.gather(
                *(
                    steps.tool(_invocation(request, call), iteration=iteration, index=index)
                    for index, call in enumerate(response.tool_calls)
                )
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


def budget_stop(request: AgentInput, reason: str, usage: Usage) -> ApplicationError:
    """The error that stops an agent whose task spent its budget."""
    return ApplicationError(
        f"subtask '{request.subtask.id}' stopped: {reason}",
        usage.model_dump(),
        type="BudgetExceeded",
        non_retryable=True,
    )


def _default_tool_specs(request: AgentInput) -> list[ToolSpec]:
    # Agents started before tools were offered from the worker's catalogue carry the
    # default registry's specs in their histories; kept for them.
    return specs_for(request.subtask.required_capabilities)


def _invocation(request: AgentInput, call: ToolCall) -> ToolInvocation:
    return ToolInvocation(
        task_id=request.task_id,
        subtask_id=request.subtask.id,
        call=call,
        capabilities=request.subtask.required_capabilities,
        side_effects=request.side_effects,
    )


async def _result(
    *,
    answer: str,
    answer_ref: BlobRef | None,
    messages: list[ChatMessage],
    usage: Usage,
    iterations: int,
    agent: str | None,
) -> AgentResult:
    result = AgentResult(
        answer=answer,
        answer_ref=answer_ref,
        transcript=messages,
        usage=usage,
        iterations=iterations,
        agent=agent,
    )
    if messages and len(result.model_dump_json()) > _TRANSCRIPT_INLINE_BYTES:
        ref = await store_text(AgentTranscript(messages=messages).model_dump_json())
        result = result.model_copy(update={"transcript": [], "transcript_ref": ref})
    return result
