"""The one-workflow floor: a task run the way the leanest durable agent runtimes run it.

pydantic-ai's Temporal integration and the OpenAI Agents SDK on Temporal run an agent (or a
plan of agents) as ONE workflow: every LLM call and every tool call is an activity, the agent
loops are coroutines of that workflow, and nothing else is recorded (no projection, no pool
lookup, no child workflows). `OneWorkflowTask` does the same work as a MAHSM task with the
same activities (`llm_complete`, `tool_execute`, called by name), so a benchmark comparing the
two measures the engine around the calls, not the calls.

Shape: plan (one LLM call, skipped when the request carries the subtasks) -> every subtask's
agent loop as soon as its dependencies are done, all concurrently -> one aggregation call, or
the single subtask's answer as the result.

This module imports only the SDK and the call contracts so the sandbox loads it cheaply.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from bench.one_workflow_contracts import FloorRequest
    from mahsm.contracts.llm import ChatMessage, LLMPurpose, LLMRequest, LLMResponse
    from mahsm.contracts.task import Plan, Subtask
    from mahsm.contracts.tools import ToolInvocation, ToolOutcome

# The retry policies of MAHSM's own LLM and tool activities (workflows/retry.py), copied so
# that this module does not depend on the engine it is compared with.
_LLM_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=10,
)
_TOOL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
)
_AGENT_SYSTEM = (
    "You are an agent working one subtask of a larger task. Use the tools when they help. "
    "When you are done, answer with the subtask's result as plain text."
)


@workflow.defn(name="OneWorkflowTask")
class OneWorkflowTask:
    """Plan, agents and aggregation of one task in a single workflow; returns the answer."""

    @workflow.run
    async def run(self, request: FloorRequest) -> str:
        subtasks = request.subtasks or await self._plan(request)
        done: dict[str, asyncio.Task[str]] = {}

        async def node(subtask: Subtask) -> str:
            inputs = [await done[d] for d in subtask.depends_on]
            return await self._agent(request, subtask, inputs)

        for subtask in subtasks:  # a valid plan lists dependencies first
            done[subtask.id] = asyncio.create_task(node(subtask))
        answers = await asyncio.gather(*done.values())
        if len(answers) == 1:
            return answers[0]
        parts = "\n\n".join(f"[{s.id}]\n{a}" for s, a in zip(subtasks, answers, strict=True))
        response = await self._llm(
            request,
            LLMPurpose.AGGREGATE,
            [
                ChatMessage(role="system", content="Combine the subtask results."),
                ChatMessage(
                    role="user",
                    content=f"Task:\n{request.description}\n\nSubtask results:\n{parts}",
                ),
            ],
        )
        return response.content or ""

    async def _plan(self, request: FloorRequest) -> list[Subtask]:
        response = await self._llm(
            request,
            LLMPurpose.PLAN,
            [
                ChatMessage(role="system", content="Split the task into a plan as JSON."),
                ChatMessage(role="user", content=f"Task:\n{request.description}"),
            ],
            response_schema=request.plan_schema,
        )
        return Plan.model_validate(json.loads(response.content or "")).subtasks

    async def _agent(self, request: FloorRequest, subtask: Subtask, inputs: list[str]) -> str:
        messages = [
            ChatMessage(role="system", content=_AGENT_SYSTEM),
            ChatMessage(
                role="user",
                content=f"Overall task:\n{request.description}\n\n"
                f"Your subtask:\n{subtask.description}",
            ),
            *(ChatMessage(role="user", content=text) for text in inputs),
        ]
        for _ in range(request.max_iterations):
            response = await self._llm(
                request, LLMPurpose.AGENT_STEP, messages, subtask=subtask, tools=True
            )
            messages.append(
                ChatMessage(
                    role="assistant", content=response.content, tool_calls=response.tool_calls
                )
            )
            if not response.tool_calls:
                return response.content or ""
            outcomes = await asyncio.gather(
                *(
                    workflow.execute_activity(
                        "tool_execute",
                        ToolInvocation(
                            task_id=workflow.info().workflow_id,
                            subtask_id=subtask.id,
                            call=call,
                            capabilities=subtask.required_capabilities,
                        ),
                        result_type=ToolOutcome,
                        start_to_close_timeout=timedelta(seconds=request.tool_timeout_s + 10),
                        retry_policy=_TOOL_RETRY,
                    )
                    for call in response.tool_calls
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
        raise ApplicationError(f"subtask {subtask.id} reached max_iterations", non_retryable=True)

    @staticmethod
    async def _llm(
        request: FloorRequest,
        purpose: LLMPurpose,
        messages: list[ChatMessage],
        *,
        subtask: Subtask | None = None,
        tools: bool = False,
        response_schema: dict[str, object] | None = None,
    ) -> LLMResponse:
        response: LLMResponse = await workflow.execute_activity(
            "llm_complete",
            LLMRequest(
                model=request.model,
                purpose=purpose,
                messages=list(messages),
                tools=request.tools if tools else [],
                response_schema=response_schema,
                response_schema_name="Plan" if response_schema else None,
                task_id=workflow.info().workflow_id,
                subtask_id=subtask.id if subtask else None,
            ),
            result_type=LLMResponse,
            start_to_close_timeout=timedelta(seconds=request.llm_timeout_s),
            heartbeat_timeout=timedelta(seconds=min(60.0, request.llm_timeout_s)),
            retry_policy=_LLM_RETRY,
        )
        return response
