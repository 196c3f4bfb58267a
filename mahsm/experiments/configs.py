"""Experiment configurations: overrides of a target's options, their ids, grids and files.

A config changes how one run of the target goes: the model (or fallback chain), sampling
(`temperature`, `max_tokens`, applied to every `llm` and `signature` step of a pipeline), the
agent settings (`max_iterations`, `max_parallel`), a prompt artifact version, middleware and
pipeline inputs. Its `config_id` is a short hash of its canonical JSON, so the same config has
the same id on every run and machine.

Field names are part of the file format (YAML): add fields, never rename them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, Field, ValidationError

from mahsm.contracts.common import INPUT
from mahsm.contracts.pipeline import ModelChoice
from mahsm.contracts.task import MAX_PARALLEL, MIDDLEWARE_NAME_PATTERN

MAX_CONFIGS = 64
"""The most configs one experiment may compare (after grid expansion)."""
CONFIG_ID_LENGTH = 12


class ExperimentConfig(BaseModel):
    """One variant of the target: every field unset keeps the target's own value."""

    model_config = INPUT

    label: str | None = Field(
        default=None,
        max_length=80,
        description="a display name; not part of config_id",
    )
    model: ModelChoice | None = Field(
        default=None, description="'provider/model'; a list is a fallback chain"
    )
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0, le=200_000)
    max_iterations: int | None = Field(default=None, ge=1, le=100)
    max_parallel: int | None = Field(default=None, ge=1, le=MAX_PARALLEL)
    artifact_version: int | None = Field(
        default=None,
        ge=1,
        description="the version of the prompt artifact every signature step with one loads",
    )
    middleware: list[Annotated[str, Field(pattern=MIDDLEWARE_NAME_PATTERN)]] | None = Field(
        default=None, max_length=16
    )
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="pipeline inputs this config sets (over the row's)"
    )

    @property
    def config_id(self) -> str:
        """A short hash of the canonical JSON of the overrides (the label excluded)."""
        return config_id(self)

    def display(self) -> str:
        """The label, or the overrides in short (`model=..., temperature=...`)."""
        if self.label:
            return self.label
        fields = self.model_dump(mode="json", exclude_none=True, exclude={"label"})
        if not fields.get("inputs"):
            fields.pop("inputs", None)
        return ", ".join(f"{k}={v}" for k, v in fields.items()) or "defaults"


def canonical_json(config: ExperimentConfig) -> str:
    """The config as JSON with sorted keys, unset fields and the label left out."""
    fields = config.model_dump(mode="json", exclude_none=True, exclude={"label"})
    if not fields.get("inputs"):
        fields.pop("inputs", None)
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def config_id(config: ExperimentConfig) -> str:
    """`c` + the first hex digits of the SHA-256 of the canonical JSON."""
    digest = hashlib.sha256(canonical_json(config).encode()).hexdigest()
    return "c" + digest[: CONFIG_ID_LENGTH - 1]


class GridError(ValueError):
    """A grid that cannot be expanded (unknown field, not a list, too many configs)."""


def expand_grid(
    grid: dict[str, list[Any]], base: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in the grid's key order, over `base`.

    `inputs.<name>` keys set one pipeline input. Raises `GridError` naming the key.
    """
    keys = list(grid)
    for key in keys:
        field = key.split(".", 1)[0]
        if field not in ExperimentConfig.model_fields or (field == "inputs") != ("." in key):
            raise GridError(
                f"grid.{key}: not a config field; use one of "
                + ", ".join(f for f in ExperimentConfig.model_fields if f != "inputs")
                + ", or inputs.<name>"
            )
        if not isinstance(grid[key], list) or not grid[key]:
            raise GridError(f"grid.{key}: give a non-empty list of values")
    total = 1
    for key in keys:
        total *= len(grid[key])
    if total > MAX_CONFIGS:
        raise GridError(f"grid: expands to {total} configs; at most {MAX_CONFIGS} are allowed")
    configs = []
    for values in itertools.product(*(grid[key] for key in keys)):
        config: dict[str, Any] = json.loads(json.dumps(base or {}))
        for key, value in zip(keys, values, strict=True):
            if key.startswith("inputs."):
                config.setdefault("inputs", {})[key.removeprefix("inputs.")] = value
            else:
                config[key] = value
        configs.append(config)
    return configs


def expand_model(grid_model: type[BaseModel]) -> list[dict[str, Any]]:
    """A grid from a pydantic model whose fields' defaults list the values to expand."""
    grid: dict[str, list[Any]] = {}
    for name, field in grid_model.model_fields.items():
        default = field.get_default(call_default_factory=True)
        grid[name] = list(default) if isinstance(default, list | tuple) else [default]
    return expand_grid(grid)


class ConfigFileError(ValueError):
    """A config file or folder that cannot be read, naming the file and the field."""


def load_config_file(path: str | Path) -> list[dict[str, Any]]:
    """The configs of one YAML file (a config, or a list of them) or of a folder of them."""
    path = Path(path)
    if path.is_dir():
        found: list[dict[str, Any]] = []
        for item in sorted([*path.glob("*.yaml"), *path.glob("*.yml")]):
            found += load_config_file(item)
        if not found:
            raise ConfigFileError(f"{path}: the folder holds no .yaml/.yml config files")
        return found
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ConfigFileError(f"{path}: cannot read it as YAML ({type(error).__name__})") from None
    items = document if isinstance(document, list) else [document]
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigFileError(f"{path}: config {index} is not a mapping of option: value")
        try:
            ExperimentConfig.model_validate(item)
        except ValidationError as error:
            first = error.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise ConfigFileError(f"{path}: config {index}: {loc}: {first['msg']}") from None
    return items
