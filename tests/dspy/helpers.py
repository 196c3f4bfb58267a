"""Answers in the format DSPy's ChatAdapter parses, and scripted rules that give them."""

from __future__ import annotations

import json
from typing import Any

from temporalio.api.history.v1 import HistoryEvent

from mahsm.contracts.pipeline import Pipeline
from mahsm.contracts.task import TaskRequest


def chat(**fields: Any) -> str:
    """A ChatAdapter answer: `[[ ## field ## ]]` sections, then `completed`."""
    parts = []
    for name, value in fields.items():
        text = value if isinstance(value, str) else json.dumps(value)
        parts.append(f"[[ ## {name} ## ]]\n{text}")
    return "\n\n".join([*parts, "[[ ## completed ## ]]"])


def rule(step: str, content: str, match: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"purpose": "step", "subtask": step, "respond": {"content": content}}
    if match is not None:
        found["match"] = match
    return found


def pipeline(steps: list[dict[str, Any]], **extra: Any) -> Pipeline:
    return Pipeline.model_validate({"name": "dspy-test", "steps": steps, **extra})


def run(p: Pipeline, **inputs: Any) -> TaskRequest:
    return TaskRequest(description=f"Run pipeline {p.name}", pipeline=p, inputs=inputs)


def activity_ids(events: list[HistoryEvent]) -> list[str]:
    """Ids of the activities the workflow scheduled, in order."""
    return [
        e.activity_task_scheduled_event_attributes.activity_id
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
