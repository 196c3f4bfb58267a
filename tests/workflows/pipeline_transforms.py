"""Transforms the pipeline tests name by import path (`tests.workflows.pipeline_transforms.*`)."""

from __future__ import annotations

import time
from typing import Any


def shape(values: dict[str, Any]) -> dict[str, Any]:
    """Everything it was given, with the number of values, so tests see what a transform gets."""
    return {"seen": values, "count": len(values)}


def fails(values: dict[str, Any]) -> Any:
    raise ValueError("the ledger does not balance")


def not_json(values: dict[str, Any]) -> Any:
    return {1, 2}


def slow(values: dict[str, Any]) -> Any:
    time.sleep(float(values.get("seconds", 5)))
    return "late"
