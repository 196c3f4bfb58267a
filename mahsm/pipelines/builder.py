"""A small Python builder for pipelines, the code form of the YAML file.

    from mahsm.pipelines.builder import PipelineBuilder, llm, tool

    pipeline = (
        PipelineBuilder("ticket-triage")
        .input("ticket", "str")
        .llm("draft", prompt="Draft a reply to this ticket: {ticket}")
        .parallel("checks", [llm("tone", "Rate the tone of: {draft}"),
                             tool("total", "calculator", {"expression": "6*7"})])
        .transform("final", "examples.pipelines.shape_reply")
        .output("reply", "{final.reply}")
        .build()
    )

Steps are added in order (each follows the previous one unless it says `depends_on=`);
any other step field (`model`, `is_critical`, `timeout_s`, ...) is a keyword argument.
`build()` checks the structure (names, placeholders, cycles) and raises `PipelineInvalid`
naming every problem; tools, transforms and providers are checked where it is submitted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mahsm.contracts.pipeline import (
    AgentStep,
    InputType,
    LLMStep,
    ParallelStep,
    Pipeline,
    Step,
    ToolStep,
    TransformStep,
)
from mahsm.pipelines.validation import PipelineProblem, validate_pipeline


class PipelineInvalid(ValueError):
    """`build()` found problems; `problems` names each step and field."""

    def __init__(self, name: str, problems: list[PipelineProblem]) -> None:
        self.problems = problems
        super().__init__(f"pipeline '{name}': " + "; ".join(str(p) for p in problems))


def llm(name: str, prompt: str, **fields: Any) -> LLMStep:
    """An `llm` step: one LLM call from a prompt template."""
    return LLMStep(name=name, prompt=prompt, **fields)


def tool(name: str, tool: str, args: dict[str, Any] | None = None, **fields: Any) -> ToolStep:
    """A `tool` step: one call of a registered tool; string argument values are templates."""
    return ToolStep(name=name, tool=tool, args=args or {}, **fields)


def transform(
    name: str, function: str | Callable[..., Any], args: dict[str, Any] | None = None, **fields: Any
) -> TransformStep:
    """A `transform` step; `function` is an import path, an entry-point name, or a function.

    A function is referred to by its import path (`module.name`), so the workers must be able
    to import it: define it at module level in a module they can import.
    """
    if callable(function):
        function = f"{function.__module__}.{function.__qualname__}"
    return TransformStep(name=name, function=function, args=args, **fields)


def agent(name: str, description: str, **fields: Any) -> AgentStep:
    """An `agent` step: an agent loop with tools on a capability pool."""
    return AgentStep(name=name, description=description, **fields)


def parallel(name: str, steps: list[Step], **fields: Any) -> ParallelStep:
    """A `parallel` group: its steps run concurrently, outputs collected under `name`."""
    return ParallelStep(name=name, steps=steps, **fields)


class PipelineBuilder:
    """Builds a `Pipeline` step by step; every method returns the builder.

    Args:
        name: The pipeline's name (lower case, digits, `-` and `_`).
        description: What it does (the description of its runs).
        version: Its version when registered; unset: the registry numbers it.
    """

    def __init__(
        self, name: str, *, description: str | None = None, version: str | None = None
    ) -> None:
        self._head: dict[str, Any] = {"name": name, "description": description, "version": version}
        self._inputs: dict[str, InputType] = {}
        self._steps: list[Step] = []
        self._outputs: dict[str, str] = {}

    def input(self, name: str, kind: InputType = "str") -> PipelineBuilder:
        """Declare an input and its type: str, int, float, bool, list, dict or any."""
        self._inputs[name] = kind
        return self

    def step(self, step: Step) -> PipelineBuilder:
        """Add a step built elsewhere (e.g. with `llm(...)`)."""
        self._steps.append(step)
        return self

    def llm(self, name: str, prompt: str, **fields: Any) -> PipelineBuilder:
        """Add an `llm` step (`model`, `system`, `response_schema`, ... as keywords)."""
        return self.step(llm(name, prompt, **fields))

    def tool(
        self, name: str, tool_name: str, args: dict[str, Any] | None = None, **fields: Any
    ) -> PipelineBuilder:
        """Add a `tool` step calling the registered tool `tool_name` with `args`."""
        return self.step(tool(name, tool_name, args, **fields))

    def transform(
        self,
        name: str,
        function: str | Callable[..., Any],
        args: dict[str, Any] | None = None,
        **fields: Any,
    ) -> PipelineBuilder:
        """Add a `transform` step (a function by import path, entry point, or itself)."""
        return self.step(transform(name, function, args, **fields))

    def agent(self, name: str, description: str, **fields: Any) -> PipelineBuilder:
        """Add an `agent` step (`capabilities`, `max_iterations`, ... as keywords)."""
        return self.step(agent(name, description, **fields))

    def parallel(self, name: str, steps: list[Step], **fields: Any) -> PipelineBuilder:
        """Add a `parallel` group of steps (build them with `llm`, `tool`, ...)."""
        return self.step(parallel(name, steps, **fields))

    def output(self, name: str, template: str) -> PipelineBuilder:
        """Declare an output: a template over inputs and steps, e.g. '{final.reply}'."""
        self._outputs[name] = template
        return self

    def build(self) -> Pipeline:
        """The pipeline; raises `PipelineInvalid` (or pydantic's `ValidationError`) if wrong."""
        pipeline = Pipeline(
            **self._head, inputs=self._inputs, steps=self._steps, outputs=self._outputs
        )
        problems = validate_pipeline(pipeline)
        if problems:
            raise PipelineInvalid(pipeline.name, problems)
        return pipeline
