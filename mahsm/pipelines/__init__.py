"""Pipelines: hand-written graphs of typed steps (see docs/pipelines.md)."""

from mahsm.pipelines.graph import compile_pipeline
from mahsm.pipelines.validation import (
    Catalogue,
    PipelineProblem,
    validate_inputs,
    validate_pipeline,
)

__all__ = [
    "Catalogue",
    "PipelineProblem",
    "compile_pipeline",
    "validate_inputs",
    "validate_pipeline",
]
