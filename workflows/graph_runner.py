"""Runs a plan's DAG inside `TaskWorkflow` with agents inline (engine v2).

Each subtask starts as soon as its dependencies are done, higher priority first, up to
`max_parallel` (default: every ready subtask, at most `MAX_PARALLEL`). Its agent loop runs
as a coroutine of the task's workflow; its LLM and tool activities go to the task queue of
its capability pool. The rule for child workflows: when the task's history reaches
`inline_history_events` events or `inline_history_bytes` bytes, each running agent moves,
at its next iteration, into a child `AgentWorkflow` with its conversation so far, and
subtasks starting later run as children from the start. The task's own history then grows
only by two or three events per child, whatever the agents do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    FailureError,
    is_cancelled_exception,
)
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

with workflow.unsafe.imports_passed_through():
    from opentelemetry.trace import Span

    from mahsm.contracts.engine import AgentInput, AgentResult, EngineDefaults
    from mahsm.contracts.llm import LLMRequest, LLMResponse
    from mahsm.contracts.middleware import MiddlewareHook, StepError, StepInfo
    from mahsm.contracts.pipeline import AgentStep, StepKind, model_chain
    from mahsm.contracts.task import MAX_PARALLEL, Subtask, SubtaskStatus, TaskRequest, Usage
    from mahsm.contracts.tools import ToolInvocation, ToolOutcome
    from mahsm.workflows import spans
    from mahsm.workflows.agent_artifacts import agent_artifact
    from mahsm.workflows.agent_loop import budget_stop, run_agent_loop
    from mahsm.workflows.agent_workflow import AgentWorkflow
    from mahsm.workflows.dag_runner import DagRunner
    from mahsm.workflows.failures import failure_message, usage_of_failure
    from mahsm.workflows.middleware_hooks import hooked_middleware, run_hook, run_info
    from mahsm.workflows.payloads import OUTPUT_INLINE_BYTES, store_text
    from mahsm.workflows.pipeline_steps import (
        PipelineSteps,
        PipelineValues,
        StepFailed,
        StepOutput,
    )
    from mahsm.workflows.pool_calls import on_pool
    from mahsm.workflows.pool_profiles import with_profile
    from mahsm.workflows.pool_router import Need, PoolRouter
    from mahsm.workflows.task_calls import BudgetSpent, SubtaskDeadline, TaskCalls
    from mahsm.workflows.task_recorder import TaskRecorder


T = TypeVar("T")


class HandOff(Exception):
    """The task's history reached its inline bound: continue this agent in a child."""

    def __init__(self, progress: AgentInput) -> None:
        super().__init__("hand off to a child workflow")
        self.progress = progress


def history_is_full(defaults: EngineDefaults) -> bool:
    """True once the task's history reached the bound for running agents inline."""
    info = workflow.info()
    return (
        info.get_current_history_length() >= defaults.inline_history_events
        or info.get_current_history_size() >= defaults.inline_history_bytes
    )


class InlineAgentSteps:
    """An agent's calls from the task's workflow: on its pool's queue, through the task's gate."""

    keeps_transcript = False

    def __init__(
        self,
        *,
        calls: TaskCalls,
        router: PoolRouter,
        defaults: EngineDefaults,
        request: AgentInput,
        queue: str,
        deadline: datetime,
    ) -> None:
        self.calls = calls
        self.router = router
        self.defaults = defaults
        self.request = request
        self.queue = queue
        self.deadline = deadline
        self.usage = Usage()
        self.model: str | None = None
        self.detections: dict[str, int] = {}
        self._need: Need = frozenset(request.subtask.required_capabilities)

    def before_iteration(self, progress: AgentInput) -> None:
        """Hand the agent off to a child once the task's history is full."""
        if history_is_full(self.defaults):
            raise HandOff(progress)

    async def llm(self, request: LLMRequest, *, iteration: int) -> LLMResponse:
        """One budgeted LLM call on the pool's queue."""
        sid = self.request.subtask.id
        response: LLMResponse = await self._on_pool(
            lambda queue, suffix: self.calls.llm(
                request,
                activity_id=f"{sid}/llm-{iteration}{suffix}",
                summary=f"LLM step {iteration + 1}: {sid}",
                queue=queue,
                deadline=self.deadline,
                budgeted=True,
            )
        )
        self.usage = self.usage + response.usage
        self.model = response.model
        for key, count in response.detections.items():
            self.detections[key] = self.detections.get(key, 0) + count
        return response

    def after_llm(self, usage: Usage) -> None:
        """Stop the agent whose own calls, with the task's usage at its start, spent the budget.

        Other agents' calls stop it at its next call instead (the task's one gate).
        """
        budget = self.request.budget
        reason = budget.exceeded_by(self.request.usage_before + usage) if budget else None
        if reason:
            raise budget_stop(self.request, reason, usage)

    async def tool(self, invocation: ToolInvocation, *, iteration: int, index: int) -> ToolOutcome:
        """One tool call on the pool's queue."""
        sid = self.request.subtask.id
        outcome: ToolOutcome = await self._on_pool(
            lambda queue, suffix: self.calls.tool(
                invocation,
                activity_id=f"{sid}/tool-{iteration}-{index}{suffix}",
                queue=queue,
                deadline=self.deadline,
            )
        )
        return outcome

    async def _on_pool(self, call: Callable[[str, str], Awaitable[T]]) -> T:
        result, self.queue = await on_pool(
            self.router, self.request.subtask.id, self._need, self.queue, call
        )
        return result


class GraphRunner(DagRunner):
    """The engine-v2 scheduler: `DagRunner`'s ordering and blocking, agents run inline."""

    def __init__(
        self,
        *,
        recorder: TaskRecorder,
        request: TaskRequest,
        defaults: EngineDefaults,
        calls: TaskCalls,
        instructions: dict[str, str] | None = None,
    ) -> None:
        super().__init__(recorder=recorder, request=request, defaults=defaults)
        self._instructions = instructions or {}  # by artifact reference
        self._calls = calls
        self._router = PoolRouter(recorder=recorder, wait_s=self._wait_s, busy=calls.running)
        self._pools = self._router  # type: ignore[assignment]  # cancel_all() stops lookups
        self._max_parallel = request.options.max_parallel or MAX_PARALLEL
        self._models = model_chain(request.options.model) or [defaults.model]
        self._step_error_hooks: list[asyncio.Task[None]] = []
        self._pipeline: PipelineSteps | None = None
        if request.pipeline is not None:
            self._pipeline = PipelineSteps(
                values=PipelineValues(request.pipeline, request.inputs),
                calls=calls,
                router=self._router,
                task_id=recorder.state.task_id,
                models=self._models,
                tool_timeout_s=defaults.tool_timeout_s,
                middleware=request.options.middleware,
                side_effects=request.options.side_effects,
            )

    async def hooks_done(self) -> None:
        """Wait for the `on_step_error` hooks of failed steps (their failures are noted)."""
        while self._step_error_hooks:
            await self._step_error_hooks.pop(0)

    def pipeline_outputs(self) -> dict[str, Any]:
        """A pipeline run's declared outputs (raises `StepFailed` when one cannot be filled)."""
        assert self._pipeline is not None
        return self._pipeline.values.outputs()

    def _settled(self) -> set[str]:
        """Completed subtasks, and failed ones that are not critical (dependents get null)."""
        return super()._settled() | {
            item.subtask.id
            for item in self._recorder.state.subtasks
            if item.result.status == SubtaskStatus.FAILED and not item.subtask.is_critical
        }

    def _budget_reason(self) -> str | None:
        return self._calls.budget.spent()

    async def _start(self, subtask: Subtask) -> tuple[str | None, float] | None:
        """Find the subtask's pool (agents and tools) and mark it running; None if it failed.

        Returns its queue (None: the task's own) and its timeout in seconds.
        """
        recorder, sid = self._recorder, subtask.id
        queue: str | None = None
        if subtask.kind in (StepKind.AGENT, StepKind.TOOL):
            try:
                queue = await self._router.queue_for(sid, frozenset(subtask.required_capabilities))
            except asyncio.CancelledError:
                self._cancelled(sid)
                raise
            except FailureError as error:  # the lookup's local activity failed
                if is_cancelled_exception(error):
                    self._cancelled(sid)
                    raise asyncio.CancelledError() from error
                self._finish_failed(sid, f"{failure_message(error)} (waited {self._wait_s:g}s)")
                return None
        recorder.update_subtask(
            sid,
            status=SubtaskStatus.RUNNING,
            started_at=workflow.now(),
            pool=queue,
            attempts=recorder.state.subtask(sid).result.attempts + 1,
            waiting_for=None,
        )
        step_timeout = subtask.step.timeout_s if subtask.step is not None else None
        timeout_s = (
            step_timeout
            or self._request.options.subtask_timeout_s
            or self._defaults.subtask_timeout_s
        )
        return queue, timeout_s

    async def _run_subtask(self, subtask: Subtask) -> None:
        state = self._recorder.state
        kind = "subtask" if subtask.kind == StepKind.AGENT else "step"
        attributes = {
            "mahsm.task_id": state.task_id,
            "mahsm.subtask_id": subtask.id,
            "mahsm.step.kind": subtask.kind.value,
        }
        with spans.span(f"{kind} {subtask.id}", attributes) as span:
            try:
                await self._work_subtask(subtask)
            finally:
                self._record_subtask_end(span, subtask.id)

    def _record_subtask_end(self, span: Span, subtask_id: str) -> None:
        for item in self._recorder.state.subtasks:
            if item.subtask.id == subtask_id:
                span.set_attribute("mahsm.subtask.status", item.result.status.value)
                spans.record_usage(span, item.result.usage)

    async def _work_subtask(self, subtask: Subtask) -> None:
        if subtask.kind != StepKind.AGENT:
            await self._run_step(subtask)
            return
        defaults, sid = self._defaults, subtask.id
        started = await self._start(subtask)
        if started is None:
            return
        queue, timeout_s = started
        assert queue is not None
        deadline = workflow.now() + timedelta(seconds=timeout_s)
        try:
            agent = with_profile(self._agent_input(subtask), self._router.profile(queue))
        except StepFailed as error:
            self._finish_failed(sid, str(error))
            return
        steps = InlineAgentSteps(
            calls=self._calls,
            router=self._router,
            defaults=defaults,
            request=agent,
            queue=queue,
            deadline=deadline,
        )
        timed_out = f"subtask timed out after {timeout_s:g}s"
        result: AgentResult | None
        try:
            if history_is_full(defaults):
                raise HandOff(agent)
            result = await run_agent_loop(agent, steps)
            usage = steps.usage
        except HandOff as moved:
            result, usage = await self._in_child(subtask, moved.progress, steps, timed_out)
        except SubtaskDeadline:
            self._finish_failed(sid, timed_out, steps.usage)
            return
        except BudgetSpent as spent:
            self._finish_failed(sid, f"subtask '{sid}' stopped: {spent}", steps.usage)
            return
        except ApplicationError as error:  # MaxIterationsReached, BudgetExceeded
            self._finish_failed(sid, error.message, steps.usage)
            return
        except ActivityError as error:
            if is_cancelled_exception(error):
                self._cancelled(sid)
                raise asyncio.CancelledError() from error
            self._finish_failed(sid, failure_message(error), steps.usage)
            return
        except asyncio.CancelledError:
            self._cancelled(sid)
            raise
        if steps.detections:
            found = ", ".join(f"{k} x{n}" for k, n in sorted(steps.detections.items()))
            self._recorder.note(f"middleware detections: {found}", subtask_id=sid)
        self._recorder.update_subtask(sid, model=steps.model, detections=steps.detections)
        if result is not None:
            await self._finish_completed(sid, result, usage)

    def _agent_input(self, subtask: Subtask) -> AgentInput:
        state, options, defaults = self._recorder.state, self._request.options, self._defaults
        models, max_iterations = self._models, options.max_iterations
        step = subtask.step
        if isinstance(step, AgentStep):  # a pipeline's agent: its own template and options
            assert self._pipeline is not None
            description = self._pipeline.render_text("description", step.name, step.description)
            subtask = subtask.model_copy(update={"description": description})
            models = model_chain(step.model) or models
            max_iterations = step.max_iterations or max_iterations
        return AgentInput(
            task_id=state.task_id,
            task_description=state.description,
            subtask=subtask,
            dependencies=self._dependencies(subtask),
            model=models[0],
            fallback=models[1:],
            fallback_attempts=defaults.fallback_attempts,
            middleware=options.middleware,
            side_effects=options.side_effects,
            instructions=self._instructions.get(agent_artifact(options, step) or ""),
            max_iterations=max_iterations,
            llm_timeout_s=defaults.llm_timeout_s,
            tool_timeout_s=defaults.tool_timeout_s,
            budget=options.budget,
            usage_before=state.usage,
            tool_capabilities_only=True,
        )

    async def _in_child(
        self, subtask: Subtask, progress: AgentInput, steps: InlineAgentSteps, timed_out: str
    ) -> tuple[AgentResult | None, Usage]:
        """Continue an agent in a child workflow; (None, usage) when it did not complete."""
        sid, recorder = subtask.id, self._recorder
        recorder.note("agent continues in a child workflow (task history is long)", subtask_id=sid)
        remaining = (steps.deadline - workflow.now()).total_seconds()
        if remaining <= 0:
            self._finish_failed(sid, timed_out, steps.usage)
            return None, steps.usage
        carried = progress.usage
        try:
            with self._calls.running():
                result = await workflow.execute_child_workflow(
                    AgentWorkflow.run,
                    progress.model_copy(
                        update={
                            "usage_before": recorder.state.usage - carried,
                            "llm_timeout_s": self._defaults.llm_timeout_s,
                        }
                    ),
                    id=f"{recorder.state.task_id}.{sid}",
                    task_queue=steps.queue,
                    execution_timeout=timedelta(seconds=remaining),
                    static_summary=f"{sid}: {subtask.description[:180]}",
                )
        except ChildWorkflowError as error:
            if is_cancelled_exception(error) and self._cancelling:
                self._cancelled(sid)
                raise asyncio.CancelledError() from error
            if is_cancelled_exception(error):  # e.g. from the Temporal UI: a failed branch
                self._cancelled(sid, error="agent workflow cancelled outside the task")
                self._block_descendants(sid)
                self._cancelled_outside.append(sid)
                return None, steps.usage
            total = usage_of_failure(error)
            recorder.add_usage(total - carried)
            message = failure_message(error)
            if isinstance(error.cause, TemporalTimeoutError):
                message = timed_out
            self._finish_failed(sid, message, total)
            return None, total
        except asyncio.CancelledError:
            self._cancelled(sid)
            raise
        recorder.add_usage(result.usage - carried)
        return result, result.usage

    def _finish_failed(self, subtask_id: str, message: str, usage: Usage | None = None) -> None:
        # Inline calls already added their usage to the task's; only the subtask's is set.
        self._recorder.update_subtask(
            subtask_id,
            status=SubtaskStatus.FAILED,
            error=message,
            finished_at=workflow.now(),
            waiting_for=None,
            usage=usage if usage is not None else Usage(),
        )
        if self._recorder.state.subtask(subtask_id).subtask.is_critical:
            self._block_descendants(subtask_id)
        elif self._pipeline is not None:  # the run goes on; dependents get null
            self._pipeline.values.failed(subtask_id, message)
        if hooked_middleware(self._defaults, self._request.options.middleware):
            # Runs beside the graph: an alerting hook must not hold the next step back.
            hook = self._step_error_hook(subtask_id, message)
            self._step_error_hooks.append(asyncio.create_task(hook))

    async def _step_error_hook(self, subtask_id: str, message: str) -> None:
        item = self._recorder.state.subtask(subtask_id)
        step = StepInfo(
            task_id=self._recorder.state.task_id,
            step_id=subtask_id,
            kind=item.subtask.kind.value,
            model=item.result.model,
        )
        try:
            await run_hook(
                self._defaults,
                self._request.options.middleware,
                MiddlewareHook.ON_STEP_ERROR,
                run_info(self._recorder.state),
                step=step,
                error=StepError(message=message),
            )
        except ActivityError as error:
            if not is_cancelled_exception(error):
                self._recorder.note(
                    f"middleware on_step_error failed: {failure_message(error)}",
                    subtask_id=subtask_id,
                )

    async def _finish_completed(self, subtask_id: str, result: AgentResult, usage: Usage) -> None:
        output: str | None = result.answer
        output_ref = result.answer_ref  # set when the answer came back by claim check
        if output_ref is not None:
            output = None
        limit = min(self._defaults.claim_check_bytes, OUTPUT_INLINE_BYTES)
        if output_ref is None and len(result.answer.encode("utf-8")) > limit:
            output_ref = await store_text(result.answer)
            output = None
        self._recorder.update_subtask(
            subtask_id,
            status=SubtaskStatus.COMPLETED,
            output=output,
            output_ref=output_ref,
            usage=usage,
            agent=result.agent,
            finished_at=workflow.now(),
            llm_calls=result.iterations,
        )
        if self._pipeline is not None:
            self._pipeline.values.completed(subtask_id, result.answer, output_ref)

    async def _run_step(self, node: Subtask) -> None:
        """A pipeline step that is one call (llm, tool, transform) or a group (parallel)."""
        assert self._pipeline is not None
        sid = node.id
        started = await self._start(node)
        if started is None:
            return
        queue, timeout_s = started
        deadline = workflow.now() + timedelta(seconds=timeout_s)
        try:
            output = await self._pipeline.run(node, deadline, queue)
        except StepFailed as error:
            self._finish_failed(sid, str(error))
            return
        except SubtaskDeadline:
            self._finish_failed(sid, f"step timed out after {timeout_s:g}s")
            return
        except BudgetSpent as spent:
            self._finish_failed(sid, f"step '{sid}' stopped: {spent}")
            return
        except ApplicationError as error:  # e.g. LLMRetriesExhausted
            self._finish_failed(sid, error.message)
            return
        except ActivityError as error:
            if is_cancelled_exception(error):
                self._cancelled(sid)
                raise asyncio.CancelledError() from error
            self._finish_failed(sid, failure_message(error))
            return
        except asyncio.CancelledError:
            self._cancelled(sid)
            raise
        await self._finish_step(node, output)

    async def _finish_step(self, node: Subtask, output: StepOutput) -> None:
        assert self._pipeline is not None
        text, output_ref = output.text, None
        if len(text.encode("utf-8")) > min(self._defaults.claim_check_bytes, OUTPUT_INLINE_BYTES):
            output_ref = await store_text(text)
        if output.detections:
            found = ", ".join(f"{k} x{n}" for k, n in sorted(output.detections.items()))
            self._recorder.note(f"middleware detections: {found}", subtask_id=node.id)
        self._recorder.update_subtask(
            node.id,
            status=SubtaskStatus.COMPLETED,
            output=None if output_ref else text,
            output_ref=output_ref,
            value=None if output_ref or isinstance(output.value, str) else output.value,
            usage=output.usage,
            model=output.model,
            detections=output.detections,
            finished_at=workflow.now(),
        )
        self._pipeline.values.completed(node.id, output.value, output_ref)
