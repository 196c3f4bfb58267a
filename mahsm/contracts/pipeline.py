"""Pipelines: graphs of typed steps written by hand, run by the task engine.

A pipeline is submitted like a task (`TaskRequest.pipeline`, or `pipeline_ref` to one
registered with `POST /pipelines`) with its `inputs`. The workflow compiles it into a `Plan`
(`mahsm.pipelines.compile_pipeline`): each step becomes a plan node of its `kind`, a
`parallel` group a node that collects its members' outputs. Structural checks (names,
placeholders, cycles, tools) are in `mahsm.pipelines.validate_pipeline`.

Field names are part of the file format (YAML): add fields, never rename them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from mahsm.contracts.common import ARTIFACT_REF_PATTERN as ARTIFACT_REF_PATTERN
from mahsm.contracts.common import INPUT, MODEL_ID_PATTERN, Capability, Text

_INPUT = INPUT

STEP_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$"
PIPELINE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_\-]{0,63}$"
MAX_STEPS = 50
"""The most steps (parallel members included) one pipeline may have, as for plans."""
MAX_FALLBACK_MODELS = 5


class StepKind(StrEnum):
    """What a plan node does. The planner writes `agent` nodes; pipelines may use any."""

    AGENT = "agent"
    LLM = "llm"
    TOOL = "tool"
    TRANSFORM = "transform"
    PARALLEL = "parallel"
    SIGNATURE = "signature"


ModelId = Annotated[str, Field(pattern=MODEL_ID_PATTERN)]


def _distinct(models: list[str]) -> list[str]:
    if len(set(models)) != len(models):
        raise ValueError("a fallback chain names each model once")
    return models


FallbackChain = Annotated[
    list[ModelId],
    Field(min_length=1, max_length=MAX_FALLBACK_MODELS),
    AfterValidator(_distinct),
]
ModelChoice = ModelId | FallbackChain
"""One model ('provider/model'), or a fallback chain tried in order."""


def model_chain(choice: ModelChoice | None) -> list[str]:
    """The models of a choice, in the order they are tried."""
    if choice is None:
        return []
    return [choice] if isinstance(choice, str) else list(choice)


class StepBase(BaseModel):
    """What every step has."""

    model_config = _INPUT

    name: str = Field(pattern=STEP_NAME_PATTERN, description="unique in the pipeline")
    depends_on: list[str] | None = Field(
        default=None,
        description="steps whose outputs it needs; unset: the previous step (top to bottom)",
    )
    is_critical: bool = Field(
        default=True,
        description="false: a failure is recorded and the run goes on; dependents get null",
    )
    timeout_s: float | None = Field(default=None, ge=1.0, le=24 * 3600)
    model: ModelChoice | None = Field(
        default=None, description="overrides the run's model; a list is a fallback chain"
    )


class AgentStep(StepBase):
    """An agent loop with tools on a capability pool (a planner's subtask)."""

    kind: Literal["agent"] = "agent"
    description: Text = Field(min_length=1, max_length=5000, description="template")
    capabilities: list[Capability] = Field(default=[Capability.DATA_ANALYSIS], min_length=1)
    max_iterations: int | None = Field(default=None, ge=1, le=100)
    artifact: str | None = Field(
        default=None,
        pattern=ARTIFACT_REF_PATTERN,
        description="a prompt artifact 'name@version' (or 'name': its latest) whose"
        " instructions and demos the agent is given",
    )


class LLMStep(StepBase):
    """One LLM call from a prompt template; structured output with `response_schema`."""

    kind: Literal["llm"] = "llm"
    prompt: Text = Field(min_length=1, max_length=100_000, description="template")
    system: Text | None = Field(default=None, max_length=20_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0, le=200_000)
    response_schema: dict[str, Any] | None = Field(
        default=None, description="JSON schema of the answer; the output is then that object"
    )


class ToolStep(StepBase):
    """One call of a registered tool; string argument values are templates."""

    kind: Literal["tool"] = "tool"
    tool: str = Field(min_length=1, max_length=128)
    args: dict[str, Any] = Field(default_factory=dict)
    capabilities: list[Capability] | None = Field(
        default=None,
        description="the pool to run it on; unset: a capability the tool is registered for",
    )


class TransformStep(StepBase):
    """A registered Python function (`module.function`) mapping earlier outputs to a value.

    It is called with one dict: `args` rendered when given, otherwise every input and every
    earlier step's output by name. It runs as an activity.
    """

    kind: Literal["transform"] = "transform"
    function: str = Field(min_length=1, max_length=256)
    args: dict[str, Any] | None = None


class SignatureStep(StepBase):
    """A DSPy program: a typed signature run by `module`, every LM call its own activity.

    Exactly one of `signature` (DSPy's string form), `signature_class` (import path of a
    `dspy.Signature`) or `program` (import path of a `dspy.Module` subclass, built without
    arguments). Its value is an object of the output fields (`{step.field}`). See docs/dspy.md.
    """

    kind: Literal["signature"] = "signature"
    signature: str | None = Field(
        default=None, max_length=5000, description="e.g. 'question: str -> answer: str'"
    )
    signature_class: str | None = Field(default=None, max_length=256)
    program: str | None = Field(default=None, max_length=256)
    instructions: Text | None = Field(default=None, max_length=20_000)
    module: Literal["predict", "chain_of_thought", "react"] = "predict"
    tools: list[str] = Field(default_factory=list, max_length=32, description="react's tools")
    inputs: dict[str, Any] | None = Field(
        default=None,
        description="input field -> template; unset: each input field from '{field}'",
    )
    max_parse_retries: int = Field(default=2, ge=0, le=5)
    max_iters: int = Field(default=5, ge=1, le=50, description="react's most tool calls")
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0, le=200_000)
    artifact: str | None = Field(
        default=None,
        pattern=ARTIFACT_REF_PATTERN,
        description="a prompt artifact 'name@version' (or 'name': its latest) to load",
    )


class ParallelStep(StepBase):
    """Steps that run concurrently; their outputs are collected under the group's name."""

    kind: Literal["parallel"] = "parallel"
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)


Step = Annotated[
    AgentStep | LLMStep | ToolStep | TransformStep | SignatureStep | ParallelStep,
    Field(discriminator="kind"),
]
LeafStep = Annotated[
    AgentStep | LLMStep | ToolStep | TransformStep | SignatureStep,
    Field(discriminator="kind"),
]
"""A step that does work itself (a plan node's `step`); a group's members are nodes too."""

InputType = Literal["str", "int", "float", "bool", "list", "dict", "any"]


class Pipeline(BaseModel):
    """A hand-written graph of steps: the file form (YAML) and the API's body."""

    model_config = _INPUT

    name: str = Field(pattern=PIPELINE_NAME_PATTERN)
    version: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.\-]{1,32}$")
    description: Text | None = Field(default=None, max_length=5000)
    inputs: dict[str, InputType] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)
    outputs: dict[str, str] = Field(
        default_factory=dict, description="name -> template, e.g. {reply: '{final}'}"
    )


ParallelStep.model_rebuild()
