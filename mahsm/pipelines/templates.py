"""Step templates: `{name}` and `{step.field}` placeholders, filled from a run's values.

A placeholder is an identifier, optionally followed by dotted keys: `{ticket}`,
`{classify.category}`, `{checks.tone}`. Anything else in braces is text (`{"a": 1}` stays as
written); `{{` and `}}` write literal braces. A template that is exactly one placeholder
gives the value itself (a dict stays a dict); otherwise values are written into the text,
strings as they are and anything else as JSON. Pure and deterministic: workflows use it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]+)*)\}")


class TemplateError(ValueError):
    """A placeholder names no value, or a key its value does not have."""


@dataclass(frozen=True)
class StepFailure:
    """The value of a non-critical step that failed: `{step}` is null, `{step.error}` why."""

    error: str


@dataclass(frozen=True)
class LargeOutput:
    """A step output stored by claim check: too large to write into a template."""

    size_bytes: int


def placeholders(template: str) -> Iterator[list[str]]:
    """The placeholders of `template`, each as its path (`['checks', 'tone']`)."""
    for match in _PLACEHOLDER.finditer(template):
        if match.group(1):
            yield match.group(1).split(".")


def template_strings(value: Any) -> Iterator[str]:
    """Every string inside `value` (a template, or args nested in dicts and lists)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from template_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from template_strings(item)


def lookup(path: list[str], values: Mapping[str, Any]) -> Any:
    """The value at `path`; raises `TemplateError` naming the missing part."""
    head, *keys = path
    if head not in values:
        raise TemplateError(f"{{{'.'.join(path)}}}: no input or step named '{head}'")
    current = values[head]
    if isinstance(current, StepFailure):
        return current.error if keys == ["error"] else None
    if isinstance(current, LargeOutput):
        raise TemplateError(
            f"{{{'.'.join(path)}}}: the output of '{head}' is {current.size_bytes} bytes, too"
            " large to write into a template; have the step return less, or use an agent step"
            " (it reads large dependency outputs)"
        )
    for depth, key in enumerate(keys, start=1):
        if isinstance(current, Mapping) and key in current:
            current = current[key]
        elif isinstance(current, list) and key.isdigit() and int(key) < len(current):
            current = current[int(key)]
        else:
            where = ".".join(path[:depth])
            shown = type(current).__name__ if current is not None else "null"
            raise TemplateError(f"{{{'.'.join(path)}}}: {where} ({shown}) has no '{key}'")
    return current


def plain(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` as JSON: failed steps are null (their errors under `_errors`), large ones too."""
    result = {k: None if isinstance(v, StepFailure | LargeOutput) else v for k, v in values.items()}
    errors = {k: v.error for k, v in values.items() if isinstance(v, StepFailure)}
    if errors:
        result["_errors"] = errors
    return result


def as_text(value: Any) -> str:
    """How a value is written into text: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def render(template: str, values: Mapping[str, Any]) -> Any:
    """Fill `template` from `values`; a lone placeholder gives its value unchanged."""
    whole = _PLACEHOLDER.fullmatch(template)
    if whole and whole.group(1):
        return lookup(whole.group(1).split("."), values)

    def fill(match: re.Match[str]) -> str:
        if not match.group(1):
            return match.group()[0]  # "{{" -> "{", "}}" -> "}"
        return as_text(lookup(match.group(1).split("."), values))

    return _PLACEHOLDER.sub(fill, template)


def render_args(args: Any, values: Mapping[str, Any]) -> Any:
    """`render` every string inside `args` (dicts and lists keep their shape)."""
    if isinstance(args, str):
        return render(args, values)
    if isinstance(args, Mapping):
        return {key: render_args(item, values) for key, item in args.items()}
    if isinstance(args, list):
        return [render_args(item, values) for item in args]
    return args
