"""Scenario files of the scripted provider: their schema, and where they are found.

The format is documented in `docs/llm.md`. Scenarios are parsed with pydantic, so a mistake
(an unknown key, a bad regex, a rule with two responses) fails with a message naming it.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mahsm.activities.llm.errors import LLMCallError

FaultKind = int | Literal["timeout"]

_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
"""Quoted text in a YAML error; longer than a character, it may be file contents (a tag)."""


def _unquote_contents(problem: str) -> str:
    def hide(match: re.Match[str]) -> str:
        inner = match.group()[1:-1]
        return match.group() if len(inner) <= 2 or inner.startswith("<") else "'...'"

    return _QUOTED.sub(hide, problem)


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

    purpose: Literal["plan", "agent_step", "aggregate", "step", "any"] = "any"
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
                raise ValueError(f"invalid regex: {error}") from None
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


@cache
def bundled_dir() -> Path:
    """The folder of the scenarios shipped with MAHSM (`mahsm/scenarios/`)."""
    return Path(str(resources.files("mahsm") / "scenarios"))


def bundled_names() -> list[str]:
    """Names of the scenarios shipped in `mahsm/scenarios/` (reads the folder)."""
    folder = bundled_dir()
    if not folder.is_dir():
        return []
    return sorted(item.name.removesuffix(".yaml") for item in folder.glob("*.yaml"))


def _shown(name: str) -> str:
    """`name` as it may appear in an error message: quoted, at most 80 characters."""
    return repr(name if len(name) <= 80 else name[:80] + "...")


def check_name(model: str) -> str:
    """`model` when it is a plain scenario name (`[A-Za-z0-9_.-]+`, no `..`).

    A scripted model never names a path: the scenario file is chosen by the operator
    (`MAHSM_SCRIPTED_SCENARIO`) or bundled with MAHSM, never by whoever sends the request.

    Raises:
        LLMCallError: Non-retryable `bad_request` for anything else (a `/`, a backslash, `..`).
    """
    if not _NAME.fullmatch(model) or ".." in model or model == ".":
        raise LLMCallError(
            f"scripted model name {_shown(model)} is not a plain scenario name. Fix: use "
            "'scripted/<name>' with <name> made of letters, digits, '_', '-' and '.' (no path "
            "separators, no '..'); the operator selects a scenario file with "
            "MAHSM_SCRIPTED_SCENARIO",
            kind="bad_request",
            retryable=False,
        )
    return model


def scenario_path(model: str, *, override: Path | None) -> Path:
    """The file that scripted model `model` reads; does no I/O.

    Args:
        model: The part after `scripted/`: a plain scenario name (see `check_name`).
        override: `Settings.scripted_scenario`; when set, used for every name.

    Returns:
        `override`, or the bundled `mahsm/scenarios/<model>.yaml`.

    Raises:
        LLMCallError: Non-retryable `bad_request` when `model` is not a plain name.
    """
    name = check_name(model)
    if override is not None:
        return override.expanduser()
    return bundled_dir() / f"{name}.yaml"


def not_found(model: str, path: Path, *, override: Path | None) -> LLMCallError:
    """The non-retryable `not_found` error for a scenario file that does not exist."""
    if override is not None:
        where = f"the file {path.name!r} set by MAHSM_SCRIPTED_SCENARIO does not exist"
        fix = "set MAHSM_SCRIPTED_SCENARIO on the worker to an existing scenario file"
    else:
        where = "there is no bundled scenario of that name"
        fix = (
            f"use 'scripted/<name>' with one of {', '.join(bundled_names()) or '(none)'}, or "
            "have the operator set MAHSM_SCRIPTED_SCENARIO to a scenario file"
        )
    return LLMCallError(
        f"scripted scenario {_shown(model)} not found: {where}. Fix: {fix}",
        kind="not_found",
        retryable=False,
    )


def _describe(error: yaml.YAMLError | ValidationError | OSError | UnicodeDecodeError) -> str:
    """What is wrong, without any of the file's contents (no values, no snippets)."""
    if isinstance(error, ValidationError):
        problems = []
        for item in error.errors(include_input=False, include_url=False, include_context=False):
            where = ".".join(str(part)[:40] for part in item["loc"]) or "(top level)"
            problems.append(f"{where}: {item['msg']}")
        shown = problems[:5]
        if len(problems) > len(shown):
            shown.append(f"and {len(problems) - len(shown)} more")
        return "; ".join(shown)
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = _unquote_contents(error.problem or "syntax error")
        return f"not valid YAML{at}: {problem}"
    if isinstance(error, yaml.YAMLError):
        return "not valid YAML"
    if isinstance(error, UnicodeDecodeError):
        return "not UTF-8 text"
    return f"cannot be read ({error.strerror or type(error).__name__})"


def load_scenario(path: Path) -> Scenario:
    """Parse and validate a scenario file (blocking: run it off the event loop).

    Raises:
        LLMCallError: Non-retryable `bad_request` naming the file (by name only), the field
            and the mistake; the file's contents never appear in the message.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return Scenario.model_validate(data)
    except (yaml.YAMLError, ValidationError, OSError, UnicodeDecodeError) as error:
        raise LLMCallError(
            f"scripted scenario file {path.name!r} is invalid: {_describe(error)}. "
            "Fix the file (format: docs/llm.md)",
            kind="bad_request",
            retryable=False,
        ) from None
