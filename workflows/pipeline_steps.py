"""A pipeline's steps other than agents, and the values their templates are filled from.

`GraphRunner` schedules every node of a pipeline's plan; this runs the ones that are one
call each: `llm` (one LLM call on the task's queue), `tool` (one tool call on a pool serving
the tool), `transform` (one activity on the task's queue) and `parallel` (no call: it
collects its members' values). Each call is an activity with a readable id (`<step>/llm`,
`<step>/tool-0-0`, `<step>/transform`), so a finished step is never repeated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from mahsm.activities.tools.registry import default_registry
    from mahsm.activities.transform import TransformActivities, TransformCall, TransformResult
    from mahsm.contracts.common import Capability
    from mahsm.contracts.llm import ChatMessage, LLMPurpose, LLMRequest, ToolCall
    from mahsm.contracts.pipeline import (
        LLMStep,
        Pipeline,
        SignatureStep,
        StepKind,
        ToolStep,
        TransformStep,
        model_chain,
    )
    from mahsm.contracts.task import BlobRef, Subtask, Usage
    from mahsm.contracts.tools import ToolInvocation
    from mahsm.dspy.signatures import input_templates, step_signature
    from mahsm.pipelines.templates import (
        LargeOutput,
        StepFailure,
        TemplateError,
        as_text,
        placeholders,
        plain,
        render,
        render_args,
    )
    from mahsm.workflows.dspy_steps import SignatureRunner, SignatureStepFailed
    from mahsm.workflows.pool_calls import on_pool
    from mahsm.workflows.pool_router import PoolRouter
    from mahsm.workflows.retry import TOOL_RETRY
    from mahsm.workflows.task_calls import SubtaskDeadline, TaskCalls, out_of_time

ATTACHED = "(attached below)"


def registered_tool_capabilities(name: str) -> list[Capability] | None:
    """The capabilities the default tool registry has `name` for (in memory, deterministic)."""
    tool = default_registry().get(name)
    return sorted(tool.capabilities) if tool is not None else None


class StepFailed(Exception):
    """A step could not produce its output; the message says why and how to fix it."""


@dataclass
class StepOutput:
    """What a finished step produced."""

    value: Any
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    detections: dict[str, int] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The output as text (strings as they are, anything else as JSON)."""
        return as_text(self.value)


class PipelineValues:
    """The run's inputs and every finished step's value, for templates and outputs."""

    def __init__(self, pipeline: Pipeline, inputs: dict[str, Any]) -> None:
        self.pipeline = pipeline
        self.values: dict[str, Any] = dict(inputs)
        self.refs: dict[str, BlobRef] = {}

    def completed(self, name: str, value: Any, output_ref: BlobRef | None) -> None:
        """Record a finished step's value; a claim-checked one goes to `llm` steps attached."""
        if output_ref is not None:
            self.values[name] = LargeOutput(output_ref.size_bytes)
            self.refs[name] = output_ref
        else:
            self.values[name] = value

    def failed(self, name: str, error: str) -> None:
        """Record a failed non-critical step: dependents get null, and `{name.error}`."""
        self.values[name] = StepFailure(error)

    def group(self, members: list[str]) -> dict[str, Any]:
        """A parallel group's value: its members' values by name."""
        return {name: plain({name: self.values.get(name)})[name] for name in members}

    def outputs(self) -> dict[str, Any]:
        """The pipeline's declared outputs; without any, the last step's value."""
        templates = self.pipeline.outputs or {
            self.pipeline.steps[-1].name: "{" + self.pipeline.steps[-1].name + "}"
        }
        try:
            return {name: render(t, self.values) for name, t in templates.items()}
        except TemplateError as error:
            raise StepFailed(f"outputs: {error}") from None


class PipelineSteps:
    """Runs the one-call steps of a pipeline run."""

    def __init__(
        self,
        *,
        values: PipelineValues,
        calls: TaskCalls,
        router: PoolRouter,
        task_id: str,
        models: list[str],
        tool_timeout_s: float,
        middleware: list[str] | None = None,
        side_effects: bool = True,
    ) -> None:
        self.values = values
        self._calls = calls
        self._router = router
        self._task_id = task_id
        self._models = models
        self._tool_timeout_s = tool_timeout_s
        self._middleware = middleware
        self._side_effects = side_effects

    async def run(self, node: Subtask, deadline: datetime, queue: str | None) -> StepOutput:
        """Run one step; raises `StepFailed`, or the call's own error."""
        step = node.step
        if node.kind == StepKind.PARALLEL:
            return StepOutput(value=self.values.group(node.depends_on))
        if isinstance(step, LLMStep):
            return await self._llm(step, deadline)
        if isinstance(step, ToolStep):
            assert queue is not None
            return await self._tool(node, step, deadline, queue)
        if isinstance(step, TransformStep):
            return await self._transform(step, deadline)
        if isinstance(step, SignatureStep):
            return await self._signature(step, deadline)
        raise StepFailed(f"step '{node.id}' of kind '{node.kind}' is not run here")

    def render_text(self, field: str, step_name: str, template: str) -> str:
        """A template filled as text; raises `StepFailed` naming the step and field."""
        return as_text(self._render(field, step_name, template))

    def _render(self, field: str, step_name: str, template: Any) -> Any:
        try:
            return render_args(template, self.values.values)
        except TemplateError as error:
            raise StepFailed(f"steps.{step_name}.{field}: {error}") from None

    async def _llm(self, step: LLMStep, deadline: datetime) -> StepOutput:
        attached: list[ChatMessage] = []
        values = self.values.values
        for path in placeholders(step.prompt):  # large outputs go along as attachments
            if isinstance(values.get(path[0]), LargeOutput) and len(path) == 1:
                ref = self._ref_of(path[0])
                if ref is not None:
                    attached.append(ChatMessage(role="user", content_ref=ref))
        local = {
            name: ATTACHED if isinstance(v, LargeOutput) and self._ref_of(name) else v
            for name, v in values.items()
        }
        try:
            prompt = as_text(render(step.prompt, local))
            system = as_text(render(step.system, local)) if step.system else None
        except TemplateError as error:
            raise StepFailed(f"steps.{step.name}.prompt: {error}") from None
        models = model_chain(step.model) or self._models
        messages = [ChatMessage(role="system", content=system)] if system else []
        messages += [ChatMessage(role="user", content=prompt), *attached]
        response = await self._calls.llm(
            LLMRequest(
                model=models[0],
                fallback=models[1:],
                middleware=self._middleware,
                purpose=LLMPurpose.STEP,
                messages=messages,
                response_schema=step.response_schema,
                response_schema_name=f"{step.name}_output" if step.response_schema else None,
                max_output_tokens=step.max_tokens or 4096,
                temperature=step.temperature,
                task_id=self._task_id,
                subtask_id=step.name,
            ),
            activity_id=f"{step.name}/llm",
            summary=f"step {step.name}: llm",
            deadline=deadline,
            budgeted=True,
        )
        if response.content_ref is not None:
            raise StepFailed(
                f"step '{step.name}': the answer is too large for a pipeline value"
                f" ({response.content_ref.size_bytes} bytes); lower max_tokens"
            )
        value: Any = response.content or ""
        if step.response_schema is not None:
            value = _structured(step.name, response.content or "")
        return StepOutput(
            value=value,
            usage=response.usage,
            model=response.model,
            detections=dict(response.detections),
        )

    async def _signature(self, step: SignatureStep, deadline: datetime) -> StepOutput:
        """A DSPy program (`mahsm.workflows.dspy_steps`); its value is its output fields."""
        inputs = self._render("inputs", step.name, input_templates(step, step_signature(step)))
        runner = SignatureRunner(
            calls=self._calls,
            router=self._router,
            task_id=self._task_id,
            models=self._models,
            deadline=deadline,
            middleware=self._middleware,
            side_effects=self._side_effects,
        )
        try:
            out = await runner.run(step, inputs)
        except SignatureStepFailed as error:
            raise StepFailed(str(error)) from None
        return StepOutput(out.value, out.usage, out.model, out.detections)

    def _ref_of(self, name: str) -> BlobRef | None:
        return self.values.refs.get(name)

    async def _tool(
        self, node: Subtask, step: ToolStep, deadline: datetime, queue: str
    ) -> StepOutput:
        args = self._render("args", step.name, step.args)
        invocation = ToolInvocation(
            task_id=self._task_id,
            subtask_id=step.name,
            call=ToolCall(id=step.name, name=step.tool, arguments=json.dumps(args)),
            capabilities=node.required_capabilities,
            side_effects=self._side_effects,
        )
        outcome, _ = await on_pool(
            self._router,
            node.id,
            frozenset(node.required_capabilities),
            queue,
            lambda q, suffix: self._calls.tool(
                invocation, activity_id=f"{step.name}/tool{suffix}", queue=q, deadline=deadline
            ),
        )
        if outcome.is_error:
            raise StepFailed(f"tool '{step.tool}' failed: {outcome.content}")
        if outcome.content_ref is not None:
            raise StepFailed(
                f"tool '{step.tool}' returned {outcome.content_ref.size_bytes} bytes, too large"
                " for a pipeline value; ask it for less"
            )
        return StepOutput(value=outcome.content or "")

    async def _transform(self, step: TransformStep, deadline: datetime) -> StepOutput:
        if step.args is not None:
            values = self._render("args", step.name, step.args)
        else:
            values = plain(self.values.values)
        remaining = (deadline - workflow.now()).total_seconds()
        if remaining <= 0:
            raise SubtaskDeadline()
        try:
            result: TransformResult = await workflow.execute_activity_method(
                TransformActivities.run,
                TransformCall(
                    task_id=self._task_id, step=step.name, function=step.function, values=values
                ),
                activity_id=f"{step.name}/transform",
                start_to_close_timeout=timedelta(
                    seconds=max(1.0, min(remaining, self._tool_timeout_s))
                ),
                schedule_to_close_timeout=timedelta(seconds=max(1.0, remaining)),
                retry_policy=TOOL_RETRY,
                summary=f"step {step.name}: transform {step.function}",
            )
        except ActivityError as error:
            if out_of_time(error):
                raise SubtaskDeadline() from error
            raise
        return StepOutput(value=result.value)


def _structured(step: str, content: str) -> Any:
    try:
        value = json.loads(content)
    except json.JSONDecodeError as error:
        raise StepFailed(
            f"step '{step}': the answer is not the JSON its response_schema asks for"
            f" ({error.msg} at char {error.pos})"
        ) from None
    if not isinstance(value, dict):
        raise StepFailed(f"step '{step}': the answer is {type(value).__name__}, not an object")
    return value
