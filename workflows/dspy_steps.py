"""`signature` steps: a DSPy program run inside the task's workflow, each call an activity.

DSPy's async path (`Module.acall`) runs on the workflow's deterministic event loop. Its LM is
a `MahsmLM` whose calls are `llm_complete` activities (`<step>/dspy-<n>`, through
`TaskCalls.llm`: budget, projection, fallback, usage), and `react`'s tools are
`tool_execute` activities on a pool serving them (`<step>/tool-<n>`). On replay DSPy runs
again and every finished call's answer comes from history, so nothing finished is repeated.

What keeps DSPy deterministic here: settings are per run (`dspy.context`, a context
variable), never global; no cache, history or trace is kept; `MahsmLM` skips DSPy's
response recording (clock, uuids) and its thread hand-off. DSPy is imported when this
module is (worker start), never during a workflow activation.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    import dspy
    from dspy.utils.exceptions import AdapterParseError

    from mahsm.activities.dspy_lm import MahsmLM
    from mahsm.activities.prompt_artifacts import ArtifactRequest, PromptActivities
    from mahsm.activities.tools.registry import default_registry
    from mahsm.contracts.common import Capability
    from mahsm.contracts.llm import LLMRequest, LLMResponse, ToolCall
    from mahsm.contracts.pipeline import SignatureStep
    from mahsm.contracts.task import Usage
    from mahsm.contracts.tools import ToolInvocation
    from mahsm.dspy.signatures import (
        MODULE_KINDS,
        SignatureError,
        plain_value,
        step_program_class,
        step_signature,
        type_name,
    )
    from mahsm.prompt.store import parse_ref
    from mahsm.workflows.failures import failure_message
    from mahsm.workflows.pool_calls import on_pool
    from mahsm.workflows.pool_router import PoolRouter
    from mahsm.workflows.retry import STORE_RETRY
    from mahsm.workflows.task_calls import SubtaskDeadline, TaskCalls, out_of_time

DEFAULT_TOOL_CAPABILITY = Capability.DATA_ANALYSIS
_FAILED_FIELD = re.compile(r"Failed to parse field (\w+) with value")
_REASON = re.compile(r"Error message: (.*?)(?:\n\nAdapter |\Z)", re.DOTALL)
RETRY_NOTE = (
    "\n\nYour previous answer could not be read: {problem}. Answer again, writing every"
    " output field in the required format."
)


class SignatureStepFailed(Exception):
    """The program could not produce its outputs; the message names the field and the fix."""


@dataclass
class ProgramOutput:
    """What a finished program produced: its output fields, and what its calls used."""

    value: dict[str, Any]
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    detections: dict[str, int] = field(default_factory=dict)


class SignatureRunner:
    """Runs one `signature` step's program in the workflow."""

    def __init__(
        self,
        *,
        calls: TaskCalls,
        router: PoolRouter,
        task_id: str,
        models: list[str],
        deadline: datetime,
        middleware: list[str] | None = None,
        side_effects: bool = True,
    ) -> None:
        self._calls = calls
        self._router = router
        self._task_id = task_id
        self._models = models
        self._deadline = deadline
        self._middleware = middleware
        self._side_effects = side_effects
        self._llm_ids = itertools.count()
        self._tool_ids = itertools.count()

    async def run(self, step: SignatureStep, inputs: dict[str, Any]) -> ProgramOutput:
        """Run the program on `inputs`; raises `SignatureStepFailed`."""
        try:
            signature = step_signature(step)
            program = self._program(step, signature)
        except SignatureError as error:
            raise SignatureStepFailed(f"steps.{step.name}.{error.field}: {error.message}") from None
        if step.artifact is not None:
            await self._load_artifact(step, program)
        lm = MahsmLM(
            list(step.model) if isinstance(step.model, list) else step.model or self._models,
            temperature=step.temperature,
            max_tokens=step.max_tokens,
            call=lambda request: self._llm(step, request),
            task_id=self._task_id,
            subtask_id=step.name,
        )
        adapter = dspy.ChatAdapter(use_json_adapter_fallback=False)
        predictors = [p for _, p in program.named_predictors()]
        base = [p.signature.instructions for p in predictors]
        attempts = step.max_parse_retries + 1
        for attempt in range(attempts):
            with dspy.context(lm=lm, adapter=adapter, trace=None, track_usage=False):
                try:
                    prediction = await program.acall(**inputs)
                except AdapterParseError as error:
                    problem = parse_problem(error)
                    if attempt + 1 == attempts:
                        raise SignatureStepFailed(
                            f"step '{step.name}': the model's answer did not parse into the"
                            f" signature's outputs after {attempts} attempt(s): {problem}."
                            " Fix: make the instructions clearer, use a stronger model, or"
                            " raise max_parse_retries"
                        ) from None
                    for predictor, instructions in zip(predictors, base, strict=True):
                        predictor.signature = predictor.signature.with_instructions(
                            instructions + RETRY_NOTE.format(problem=problem)
                        )
                    continue
            break
        names = list(signature.output_fields) if signature is not None else None
        if names is not None and step.module == "chain_of_thought":
            names.insert(0, "reasoning")  # the value shows how the answer was reached
        return ProgramOutput(
            value=prediction_value(prediction, names),
            usage=lm.usage,
            model=lm.served_by,
            detections=lm.detections,
        )

    async def _load_artifact(self, step: SignatureStep, program: Any) -> None:
        """Load the artifact's instructions and demos into the program, before any LM call."""
        assert step.artifact is not None
        name, version = parse_ref(step.artifact)
        remaining = (self._deadline - workflow.now()).total_seconds()
        try:
            result = await workflow.execute_activity_method(
                PromptActivities.get,
                ArtifactRequest(name=name, version=version, tools=step.tools),
                activity_id=f"{step.name}/artifact",
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=timedelta(seconds=max(1.0, remaining)),
                retry_policy=STORE_RETRY,
                summary=f"step {step.name}: artifact {step.artifact}",
            )
        except ActivityError as error:
            if out_of_time(error):
                raise SubtaskDeadline() from error
            raise SignatureStepFailed(
                f"steps.{step.name}.artifact: {failure_message(error)}"
            ) from None
        spec = result.artifact["program"]
        try:
            program.load_state(spec["state"])
        except (KeyError, TypeError, ValueError) as error:
            raise SignatureStepFailed(
                f"steps.{step.name}.artifact: {step.artifact} holds a"
                f" {spec.get('module') or spec.get('class')} program, which does not fit this"
                f" step's {step.module} program ({type(error).__name__}: {error})"
            ) from None

    def _program(self, step: SignatureStep, signature: type[dspy.Signature] | None) -> Any:
        if signature is None:
            return step_program_class(step)()
        if step.module == "react":
            tools = [self._tool(step, name) for name in step.tools]
            return dspy.ReAct(signature, tools=tools, max_iters=step.max_iters)
        return MODULE_KINDS[step.module](signature)

    async def _llm(self, step: SignatureStep, request: LLMRequest) -> LLMResponse:
        number = next(self._llm_ids)
        return await self._calls.llm(
            request.model_copy(update={"middleware": self._middleware}),
            activity_id=f"{step.name}/dspy-{number}",
            summary=f"step {step.name}: dspy call {number + 1}",
            deadline=self._deadline,
            budgeted=True,
        )

    def _tool(self, step: SignatureStep, name: str) -> dspy.Tool:
        registered = default_registry().get(name)
        if registered is None:
            raise SignatureError("tools", f"no tool named '{name}' is registered")
        parameters = registered.spec.parameters.get("properties", {})

        async def call(**arguments: Any) -> str:
            return await self._run_tool(step, name, registered.capabilities, arguments)

        return dspy.Tool(
            call,
            name=name,
            desc=registered.spec.description,
            args=dict(parameters),
            arg_types=dict.fromkeys(parameters, Any),
        )

    async def _run_tool(
        self,
        step: SignatureStep,
        name: str,
        capabilities: frozenset[Capability],
        arguments: dict[str, Any],
    ) -> str:
        number = next(self._tool_ids)
        need = (
            [DEFAULT_TOOL_CAPABILITY]
            if DEFAULT_TOOL_CAPABILITY in capabilities or not capabilities
            else sorted(capabilities)[:1]
        )
        invocation = ToolInvocation(
            task_id=self._task_id,
            subtask_id=step.name,
            call=ToolCall(id=f"{step.name}-{number}", name=name, arguments=json.dumps(arguments)),
            capabilities=need,
            side_effects=self._side_effects,
        )
        queue = await self._router.queue_for(step.name, frozenset(need))
        outcome, _ = await on_pool(
            self._router,
            step.name,
            frozenset(need),
            queue,
            lambda q, suffix: self._calls.tool(
                invocation,
                activity_id=f"{step.name}/tool-{number}{suffix}",
                queue=q,
                deadline=self._deadline,
            ),
        )
        if outcome.content_ref is not None:
            return f"(the result of {name} is {outcome.content_ref.size_bytes} bytes, too large)"
        text = outcome.content or ""
        return f"Error: {text}" if outcome.is_error else text


def prediction_value(prediction: Any, names: list[str] | None) -> dict[str, Any]:
    """The step's value: the output fields (a program's: every field of its prediction)."""
    fields = prediction.toDict() if hasattr(prediction, "toDict") else dict(prediction)
    keys = names if names is not None else list(fields)
    return {name: plain_value(fields.get(name)) for name in keys}


def parse_problem(error: AdapterParseError) -> str:
    """Which field failed to parse and the type it expects, from DSPy's parse error."""
    fields = error.signature.output_fields
    text = str(error)
    failed = _FAILED_FIELD.search(text)
    if failed and failed.group(1) in fields:
        name = failed.group(1)
        reason = _REASON.search(text)
        detail = f" ({reason.group(1).strip()[:300]})" if reason else ""
        return f"field '{name}' is not a valid {type_name(fields[name].annotation)}{detail}"
    if error.parsed_result is not None:
        missing = [name for name in fields if name not in error.parsed_result]
        return "missing field(s) " + ", ".join(
            f"'{name}' (expected {type_name(fields[name].annotation)})" for name in missing
        )
    return "the answer was empty"
