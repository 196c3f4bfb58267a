"""A small reader of Google-style docstrings: the description and the `Args:` section."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

_ARGS_HEADERS = {"args", "arguments", "parameters", "params"}
_SECTION = re.compile(r"^([A-Z][A-Za-z ]*):\s*$")
_ARG_LINE = re.compile(r"^\*{0,2}([A-Za-z_][A-Za-z0-9_]*)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


@dataclass(frozen=True)
class Docstring:
    """What a tool's docstring says about it.

    Attributes:
        description: The text before the first section (summary and extended description).
        params: Parameter name -> its description from the `Args:` section.
    """

    description: str = ""
    params: dict[str, str] = field(default_factory=dict)


def _join(lines: list[str]) -> str:
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            paragraphs[-1].append(line.strip())
        elif paragraphs[-1]:
            paragraphs.append([])
    return "\n\n".join(" ".join(p) for p in paragraphs if p)


def parse_docstring(doc: str | None) -> Docstring:
    """Split a Google-style docstring into its description and parameter descriptions.

    Args:
        doc: The raw docstring, or None.

    Returns:
        The description (everything before the first section such as `Args:` or
        `Returns:`) and the description of each parameter listed under `Args:`.
    """
    if not doc:
        return Docstring()
    lines = inspect.cleandoc(doc).splitlines()
    description: list[str] = []
    params: dict[str, list[str]] = {}
    section: str | None = None
    current: str | None = None
    arg_indent: int | None = None
    for line in lines:
        header = _SECTION.match(line)
        if header and not line.startswith(" "):
            section = header.group(1).strip().lower()
            current, arg_indent = None, None
            continue
        if section is None:
            description.append(line)
            continue
        if section not in _ARGS_HEADERS or not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if arg_indent is None:
            arg_indent = indent
        match = _ARG_LINE.match(line.strip())
        if indent <= arg_indent and match:
            current = match.group(1)
            params[current] = [match.group(2)]
        elif current is not None:
            params[current].append(line)
    return Docstring(
        description=_join(description),
        params={name: _join(text) for name, text in params.items()},
    )
