"""Scenario files of the scripted provider: their schema, and where they are found.

The format is documented in `docs/llm.md`. Scenarios are parsed with pydantic, so a mistake
(an unknown key, a bad regex, a rule with two responses) fails with a message naming it.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from activities.llm.errors import LLMCallError

FaultKind = int | Literal["timeout"]

_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


class ScriptedToolCall(BaseModel):
    """A tool call a rule answers with; `arguments` is an object or JSON text."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    arguments: dict[str, Any] | str = Field(default_factory=dict)


class Respond(BaseModel):
    """What a matching rule answers: content and/or tool calls, a plan, raw text, or an error."""

    model_config = ConfigDict(extra="forbid")

    content: str | None = None
    tool_calls: list[ScriptedToolCall] = Field(default_factory=list)
    plan: dict[str, Any] | None = None
    raw: str | None = None
    error: FaultKind | None = None

    @field_validator("error")
    @classmethod
    def _known_error(cls, value: FaultKind | None) -> FaultKind | None:
        if isinstance(value, int) and not 400 <= value <= 599:
            raise ValueError("error must be an HTTP status 400-599 or 'timeout'")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Respond:
        kinds = [
            self.content is not None or bool(self.tool_calls),
            self.plan is not None,
            self.raw is not None,
            self.error is not None,
        ]
        if sum(kinds) != 1:
            raise ValueError(
                "respond needs exactly one of: content and/or tool_calls, plan, raw, error"
            )
        return self


class Rule(BaseModel):
    """One scripted rule; the first rule whose conditions all hold answers the call."""

    model_config = ConfigDict(extra="forbid")

    purpose: Literal["plan", "agent_step", "aggregate", "any"] = "any"
    match: str | None = Field(default=None, description="regex over system+user contents")
    subtask: str | None = Field(default=None, description="regex, full match on subtask_id")
    step: int | None = Field(default=None, ge=0, description="assistant messages so far")
    after_tool: bool | None = None
    latency_ms: float | None = Field(default=None, ge=0)
    respond: Respond

    @field_validator("match", "subtask")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"invalid regex {value!r}: {error}") from None
        return value


def _default_kinds() -> list[FaultKind]:
    return [429, 500, "timeout"]


class Faults(BaseModel):
    """Transient faults injected per call attempt."""

    model_config = ConfigDict(extra="forbid")

    rate: float = Field(default=0.0, ge=0.0, le=1.0)
    kinds: list[FaultKind] = Field(default_factory=_default_kinds, min_length=1)
    retry_after_s: float | None = Field(default=None, ge=0, description="sent with 429 faults")


class ScenarioPrices(BaseModel):
    """USD per million tokens of `scripted/<this scenario>`."""

    model_config = ConfigDict(extra="forbid")

    input_per_mtok: float = Field(default=0.0, ge=0)
    output_per_mtok: float = Field(default=0.0, ge=0)


class Scenario(BaseModel):
    """A parsed scenario file."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(default=0.0, ge=0)
    jitter_ms: float = Field(default=0.0, ge=0)
    seed: int = 1
    faults: Faults = Field(default_factory=Faults)
    prices: ScenarioPrices = Field(default_factory=ScenarioPrices)
    call_log: str | None = None
    rules: list[Rule] = Field(default_factory=list)


def bundled_names() -> list[str]:
    """Names of the scenarios shipped in `mahsm/scenarios/`."""
    folder = resources.files("mahsm") / "scenarios"
    if not folder.is_dir():
        return []
    return sorted(
        item.name.removesuffix(".yaml") for item in folder.iterdir() if item.name.endswith(".yaml")
    )


def scenario_path(model: str, *, override: Path | None) -> Path:
    """The file that scripted model `model` reads.

    Args:
        model: The part after `scripted/`: a path ending in `.yaml`/`.yml`, or a bundled name.
        override: `Settings.scripted_scenario`; used for every bundled name when set.

    Returns:
        The path of the scenario file.

    Raises:
        LLMCallError: Non-retryable `not_found` when no such scenario exists.
    """
    if model.endswith((".yaml", ".yml")):
        path = Path(model).expanduser()
    elif override is not None:
        path = override.expanduser()
    elif _NAME.match(model):
        path = Path(str(resources.files("mahsm") / "scenarios" / f"{model}.yaml"))
    else:
        path = Path(model)
    if not path.is_file():
        raise LLMCallError(
            f"scripted scenario {model!r} not found (looked for {path}). Fix: use "
            f"'scripted/<name>' with one of {', '.join(bundled_names()) or '(none)'}, "
            f"'scripted/<path>.yaml', or set MAHSM_SCRIPTED_SCENARIO to an existing file",
            kind="not_found",
            retryable=False,
        )
    return path


def load_scenario(path: Path) -> Scenario:
    """Parse and validate a scenario file.

    Raises:
        LLMCallError: Non-retryable `bad_request` naming the file and the mistake.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return Scenario.model_validate(data)
    except (yaml.YAMLError, ValidationError, OSError) as error:
        raise LLMCallError(
            f"scripted scenario {path} is invalid: {error}. Fix the file (format: docs/llm.md)",
            kind="bad_request",
            retryable=False,
        ) from error
