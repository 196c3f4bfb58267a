"""Contracts of an experiment: `ExperimentWorkflow`'s input, its branches and its state.

Only optional fields may be added: running histories hold serialized copies of them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from mahsm.contracts.common import INPUT, MODEL_ID_PATTERN, Text
from mahsm.contracts.pipeline import ARTIFACT_REF_PATTERN, Pipeline
from mahsm.contracts.task import BlobRef, Usage
from mahsm.experiments.configs import MAX_CONFIGS, ExperimentConfig, GridError, expand_grid
from mahsm.experiments.strategies import BUILT_IN, strategy_problem

MAX_ROWS = 1000
MAX_BRANCHES = 2000
"""Configs x rows of one experiment: its state (every branch) must stay far below 2 MB."""
EXPERIMENT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,79}$"
DATASET_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.\-]{0,63}$"


class Strategy(StrEnum):
    """How an experiment's configs are run."""

    ROUND_ROBIN = "round_robin"
    SHADOW = "shadow"
    MULTI_BRANCH = "multi_branch"


class Target(BaseModel):
    """What each config runs: a task template, a pipeline, or a DSPy program. Exactly one."""

    model_config = INPUT

    description: Text | None = Field(
        default=None,
        max_length=5000,
        description="a task description; {placeholders} are filled from the dataset row",
    )
    pipeline: Pipeline | None = None
    pipeline_ref: str | None = Field(
        default=None, pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}(@[A-Za-z0-9_.\-]{1,32})?$"
    )
    program: str | None = Field(
        default=None,
        max_length=256,
        description="import path of a dspy.Module subclass, run as one signature step",
    )
    artifact: str | None = Field(
        default=None, pattern=ARTIFACT_REF_PATTERN, description="prompt artifact the program loads"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Target:
        given = [
            name
            for name in ("description", "pipeline", "pipeline_ref", "program")
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of description, pipeline, pipeline_ref, program"
                f" (given: {', '.join(given) or 'none'})"
            )
        if self.artifact is not None and self.program is None:
            raise ValueError("artifact goes with program")
        return self


class MetricKind(StrEnum):
    """How a branch's output is scored against the row's expected value."""

    EXACT_MATCH = "exact_match"
    CONTAINS = "contains"
    REGEX = "regex"
    NUMERIC = "numeric"
    JSON_FIELD = "json_field"
    FUNCTION = "function"
    LLM_JUDGE = "llm_judge"


class MetricSpec(BaseModel):
    """One metric; its score is in [0, 1] (1 = pass)."""

    model_config = INPUT

    kind: MetricKind
    name: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,40}$")
    expected_key: str = Field(default="expected", max_length=64)
    pattern: str | None = Field(default=None, max_length=1000, description="regex metric")
    tolerance: float = Field(default=1e-6, ge=0, description="numeric metric, absolute")
    field: str | None = Field(default=None, max_length=200, description="json_field: a.b.c")
    function: str | None = Field(
        default=None, max_length=256, description="module.function(output, row) -> float"
    )
    case_sensitive: bool = False
    rubric: Text | None = Field(
        default=None, max_length=10_000, description="llm_judge: how to grade, 0 to 1"
    )
    judge_model: str | None = Field(
        default=None, pattern=MODEL_ID_PATTERN, description="llm_judge: the grading model"
    )

    @property
    def key(self) -> str:
        """The metric's name in scores and MLflow."""
        return self.name or self.kind.value

    @model_validator(mode="after")
    def _needs(self) -> MetricSpec:
        if self.kind == MetricKind.REGEX and self.pattern is None:
            raise ValueError("pattern: the regex metric needs a pattern")
        if self.kind == MetricKind.JSON_FIELD and self.field is None:
            raise ValueError("field: the json_field metric needs a field (e.g. answer.value)")
        if self.kind == MetricKind.FUNCTION and self.function is None:
            raise ValueError("function: give module.function")
        if self.kind == MetricKind.LLM_JUDGE and (self.rubric is None or self.judge_model is None):
            raise ValueError("llm_judge needs a rubric and a judge_model ('provider/model')")
        return self


class DatasetRow(BaseModel):
    """One dataset row: inputs (template values / pipeline inputs) and expected values."""

    model_config = INPUT

    inputs: dict[str, Any] = Field(default_factory=dict)
    expected: Any = None
    id: str | None = Field(default=None, max_length=120)


class ExperimentRequest(BaseModel):
    """`ExperimentWorkflow`'s input and the body of `POST /experiments`."""

    model_config = INPUT

    name: str = Field(pattern=EXPERIMENT_NAME_PATTERN, description="the MLflow experiment name")
    strategy: Strategy | str = Field(
        default=Strategy.MULTI_BRANCH,
        max_length=200,
        description="round_robin, shadow, multi_branch, or a custom strategy's registered name"
        " or import path (docs/experiments.md)",
    )
    target: Target
    configs: list[ExperimentConfig] = Field(default_factory=list, max_length=MAX_CONFIGS)
    grid: dict[str, list[Any]] | None = Field(
        default=None, description="expanded into configs (each combination) after `configs`"
    )
    dataset: list[DatasetRow] | None = Field(default=None, max_length=MAX_ROWS)
    metrics: list[MetricSpec] = Field(default_factory=list, max_length=16)
    primary: int = Field(default=0, ge=0, description="shadow: index of the primary config")
    shadow_side_effects: bool = Field(
        default=False,
        description="shadow: let shadow runs use tools that change the world (file writes,"
        " shared state); off by default, so a shadow cannot touch what the primary touches",
    )
    max_concurrency: int = Field(default=8, ge=1, le=64, description="branches at once")
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="values for every run (without a dataset)"
    )
    user_id: Text | None = Field(default=None, max_length=200)
    mlflow: bool = Field(default=True, description="log to MLflow")
    continue_as_new_after: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="round_robin: requests one workflow run serves before it continues as a"
        " new run (keeping the rotation), so its event history stays bounded",
    )
    carried_state: ExperimentState | None = Field(
        default=None, description="set by continue-as-new: the state the previous run reached"
    )
    dataset_ref: str | None = Field(
        default=None,
        pattern=DATASET_NAME_PATTERN,
        description="a registered dataset's name (POST /datasets) instead of `dataset`; the API"
        " copies its rows in at submit",
    )

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: Strategy | str) -> Strategy | str:
        if value in BUILT_IN:
            return Strategy(value)
        problem = strategy_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="before")
    @classmethod
    def _expand(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("grid"):
            grid, configs = data["grid"], data.get("configs", [])
            # Checked here, before the fields' own validation: the expansion runs first.
            if not isinstance(grid, dict):
                raise ValueError("grid: give an object of config field -> list of values")
            if not isinstance(configs, list):
                raise ValueError("configs: give a list of configs (or leave it out)")
            try:
                expanded = expand_grid(grid)
            except GridError as error:
                raise ValueError(str(error)) from None
            data = {**data, "configs": [*configs, *expanded], "grid": None}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentRequest:
        if not self.configs:
            raise ValueError("configs: give at least one config (or a grid)")
        ids = [c.config_id for c in self.configs]
        for index, cid in enumerate(ids):
            if ids.index(cid) != index:
                raise ValueError(
                    f"configs.{index}: the same overrides as configs.{ids.index(cid)}"
                    f" (config_id {cid}); remove one"
                )
        branches = len(self.configs) * max(1, len(self.dataset or []))
        if branches > MAX_BRANCHES:
            raise ValueError(
                f"dataset: {len(self.configs)} configs x {len(self.dataset or [])} rows ="
                f" {branches} branches; at most {MAX_BRANCHES} per experiment (split it)"
            )
        if self.primary >= len(self.configs):
            raise ValueError(f"primary: {self.primary} is not a config index (0..{len(ids) - 1})")
        if self.dataset and self.dataset_ref:
            raise ValueError("dataset_ref: give either dataset rows or a dataset_ref, not both")
        if self.strategy == Strategy.ROUND_ROBIN and (self.dataset or self.dataset_ref):
            raise ValueError("dataset: round_robin serves requests one by one; use multi_branch")
        if self.metrics and not (self.dataset or self.dataset_ref):
            raise ValueError("metrics score dataset rows; give a dataset (or a dataset_ref)")
        from mahsm.experiments.apply import config_problems

        problems = config_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


BranchRole = Literal["primary", "shadow", "branch", "served"]


class BranchStatus(StrEnum):
    """Life cycle of a branch."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"


class BranchError(BaseModel):
    """Why a branch failed."""

    type: str
    message: str
    traceback: str = ""


class Branch(BaseModel):
    """One run of one config (on one dataset row, or for one request)."""

    config_id: str
    config: ExperimentConfig
    index: int = Field(description="the config's index in the experiment")
    row: int | None = Field(default=None, description="dataset row; request number otherwise")
    role: BranchRole = "branch"
    status: BranchStatus = BranchStatus.PENDING
    output: str | None = None
    output_ref: BlobRef | None = None
    value: Any = None
    error: BranchError | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    usage: Usage = Field(default_factory=Usage)
    scores: dict[str, float] = Field(default_factory=dict)
    task_ids: list[str] = Field(default_factory=list)
    judge_usage: Usage = Field(
        default_factory=Usage, description="tokens and cost of llm_judge grading calls"
    )

    @property
    def key(self) -> str:
        """Unique in its experiment: config id and row."""
        return self.config_id if self.row is None else f"{self.config_id}.r{self.row}"


class ConfigSummary(BaseModel):
    """Aggregates of one config over its branches."""

    config_id: str
    label: str
    branches: int = 0
    errors: int = 0
    mean_score: float | None = None
    ci95: float | None = Field(default=None, description="half-width of the 95% interval")
    pass_rate: float | None = None
    p50_latency_s: float | None = None
    p95_latency_s: float | None = None
    tokens_per_row: float = 0.0
    cost_per_row: float = 0.0
    judge_cost_usd: float = Field(default=0.0, description="llm_judge calls, all rows")
    scores: dict[str, float] = Field(default_factory=dict, description="mean per metric")


class MlflowSync(BaseModel):
    """Where the experiment's MLflow logging stands."""

    status: Literal["off", "pending", "synced", "failed"] = "pending"
    experiment_id: str | None = None
    runs: int = 0
    error: str | None = None


class ExperimentState(BaseModel):
    """The whole state of an experiment: its `state` query's answer and its result."""

    experiment_id: str
    name: str
    strategy: Strategy | str
    status: Literal["running", "completed", "failed"] = "running"
    created_at: datetime
    updated_at: datetime
    configs: list[ExperimentConfig] = Field(default_factory=list)
    config_ids: list[str] = Field(default_factory=list)
    branches: list[Branch] = Field(default_factory=list)
    summary: list[ConfigSummary] = Field(default_factory=list)
    winner: str | None = Field(default=None, description="config_id of the best config")
    primary: Branch | None = Field(default=None, description="shadow: the caller's result")
    served: int = Field(default=0, description="round_robin: requests served so far")
    mlflow: MlflowSync = Field(default_factory=MlflowSync)
    error: str | None = None


class ServeRequest(BaseModel):
    """One request to a round-robin experiment: the `serve` update's input."""

    model_config = INPUT

    inputs: dict[str, Any] = Field(default_factory=dict)


class ServeResult(BaseModel):
    """The `serve` update's answer: the branch that served the request."""

    branch: Branch


ExperimentRequest.model_rebuild()  # `carried_state` names ExperimentState, defined below it
