"""The file form of a pipeline: YAML (or JSON, which YAML reads too).

`load_pipeline(path)` reads and parses one; every problem names the file and the field, with
steps named rather than numbered (`ticket.yaml: steps.draft.prompt: Field required`).
`dump_pipeline` writes the YAML form back. The format is the `Pipeline` model
(docs/pipelines.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mahsm.contracts.pipeline import Pipeline, StepKind

PIPELINE_REF_PATTERN = r"^[a-z0-9][a-z0-9_\-]{0,63}(@[A-Za-z0-9_.\-]{1,32})?$"
"""`name` or `name@version` of a registered pipeline."""

_KINDS = frozenset(StepKind)
# Errors of the step union whose tag is wrong or missing: they concern the `kind` field.
_TAG_ERRORS = frozenset({"union_tag_invalid", "union_tag_not_found"})


class PipelineFileError(ValueError):
    """A pipeline file that cannot be read or does not describe a pipeline.

    Attributes:
        path: The file.
        problems: One line per problem, each naming the field.
    """

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


def run_description(pipeline: Pipeline) -> str:
    """A run's task description: the pipeline's own when long enough, else 'Run pipeline <name>'.

    Runs need no description of their own, but a task has one of at least 10 characters.
    """
    own = pipeline.description or ""
    return own if len(own.strip()) >= 10 else f"Run pipeline {pipeline.name}"


def name_steps(loc: Sequence[Any], document: Any) -> list[Any]:
    """A pydantic error location with step positions replaced by the steps' names.

    `["steps", 0, "llm", "prompt"]` becomes `["steps", "draft", "prompt"]` when step 0 of
    `document` (what was parsed) is named `draft`; the union tag pydantic puts after a step's
    position is dropped. A location starting with "body" (an API request) is read against
    `{"body": document}`. Parts not found in `document` stay as they are.
    """
    named: list[Any] = []
    current: Any = {"body": document} if loc and loc[0] == "body" else document
    index = 0
    while index < len(loc):
        part = loc[index]
        index += 1
        current = _child(current, part)
        name = current.get("name") if isinstance(current, dict) else None
        if isinstance(part, int) and named[-1:] == ["steps"] and isinstance(name, str) and name:
            named.append(name)
            tag = current.get("kind")
            if index < len(loc) and tag in _KINDS and loc[index] == tag:
                index += 1  # the union's tag
            continue
        named.append(part)
    return named


def named_errors(errors: Sequence[Any], document: Any) -> list[dict[str, Any]]:
    """Pydantic's error entries with their locations naming steps (`name_steps`)."""
    found = []
    for item in errors:
        loc = name_steps(item.get("loc", ()), document)
        if item.get("type") in _TAG_ERRORS:
            loc.append("kind")
        found.append({**item, "loc": loc})
    return found


def _child(value: Any, part: Any) -> Any:
    if isinstance(value, dict):
        return value.get(part)
    if isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
        return value[part]
    return None


def parse_pipeline(document: Any, *, source: Path) -> Pipeline:
    """A pipeline from a parsed document; `PipelineFileError` naming `source` and fields."""
    if not isinstance(document, dict):
        shown = type(document).__name__ if document is not None else "nothing"
        raise PipelineFileError(source, [f"expected a mapping with name and steps, got {shown}"])
    try:
        return Pipeline.model_validate(document)
    except ValidationError as error:
        problems = [
            ".".join(str(part) for part in item["loc"]) + f": {item['msg']}"
            for item in named_errors(error.errors(), document)
        ]
        raise PipelineFileError(source, problems) from None


def load_pipeline(path: str | Path) -> Pipeline:
    """Read a pipeline file (YAML or JSON).

    Raises:
        PipelineFileError: The file cannot be read, is not YAML, or is not a valid pipeline;
            the message names the file and each field at fault.
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PipelineFileError(source, [f"cannot read: {error}"]) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PipelineFileError(source, [f"not valid YAML: {error}"]) from None
    return parse_pipeline(document, source=source)


def pipeline_document(pipeline: Pipeline) -> dict[str, Any]:
    """The pipeline as the file writes it: unset fields and default `is_critical` left out."""

    def prune(step: dict[str, Any]) -> dict[str, Any]:
        if step.get("is_critical") is True:
            del step["is_critical"]
        for member in step.get("steps") or []:
            prune(member)
        return step

    document = pipeline.model_dump(mode="json", exclude_none=True)
    for step in document["steps"]:
        prune(step)
    return document


def dump_pipeline(pipeline: Pipeline, path: str | Path | None = None) -> str:
    """The YAML form of `pipeline`, written to `path` when given; returns the text."""
    text = yaml.safe_dump(pipeline_document(pipeline), sort_keys=False, allow_unicode=True)
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text
