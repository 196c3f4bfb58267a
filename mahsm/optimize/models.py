"""What an optimization run is given and what its state shows."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from mahsm.contracts.pipeline import ModelChoice

OPTIMIZERS = ("bootstrap_fewshot",)
"""Optimizers that run under MAHSM's rules (see docs/dspy.md)."""


class OptimizeRequest(BaseModel):
    """Input of `OptimizeWorkflow` (and the body of `POST /optimizations`)."""

    program: str = Field(description="'module:Class' or 'module.Class' of a dspy.Module")
    trainset: list[dict[str, Any]] = Field(min_length=1, max_length=10_000)
    devset: list[dict[str, Any]] = Field(default_factory=list, max_length=10_000)
    inputs: list[str] | None = Field(
        default=None, description="input field names; unset: every key but the last"
    )
    metric: str = Field(default="exact_match", description="exact_match|contains|f1|mod:func")
    optimizer: Literal["bootstrap_fewshot"] = "bootstrap_fewshot"
    save: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-.]{0,63}$", description="artifact name")
    model: ModelChoice = "scripted/optimize"
    max_bootstrapped_demos: int = Field(default=4, ge=1, le=32)
    max_labeled_demos: int = Field(default=4, ge=0, le=32)


class OptimizeProgress(BaseModel):
    """How far a run is: metric evaluations done / planned, best dev-set score so far."""

    done: int = 0
    planned: int = 0
    best_score: float | None = None
    baseline_score: float | None = None
    stage: str = "starting"


class OptimizeResult(BaseModel):
    """What a finished run saved."""

    artifact: str
    version: int
    score: float | None
    baseline_score: float | None
    demos: int
    lm_calls: int
    lm_calls_replayed: int = Field(description="answered from the run's memo after a crash")


class OptimizeState(BaseModel):
    """The `state` query of `OptimizeWorkflow`."""

    status: Literal["running", "completed", "failed"] = "running"
    progress: OptimizeProgress = Field(default_factory=OptimizeProgress)
    result: OptimizeResult | None = None
    error: str | None = None
