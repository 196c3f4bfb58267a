"""Experiment files (YAML): the `ExperimentRequest` fields, some of them as paths.

The parts that usually live in their own files may be given by path:

- `configs`: a list of configs, or the path of a YAML file (one config or a list) or of a
  folder of them;
- `dataset`: a list of rows, or the path of a JSONL file of rows (`{"inputs": {...},
  "expected": ...}`; a row without `inputs` has its other keys as inputs);
- `target.pipeline`: a pipeline, or the path of a pipeline file.

Relative paths are relative to the experiment file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mahsm.experiments.configs import ConfigFileError, load_config_file
from mahsm.experiments.models import ExperimentRequest
from mahsm.pipelines.files import PipelineFileError, load_pipeline


class ExperimentFileError(ValueError):
    """An experiment file that cannot be used, naming the file (and field)."""


def load_dataset(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSONL dataset; a row without `inputs`/`expected` keys is all inputs."""
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ExperimentFileError(f"{path}: cannot read it ({error.strerror})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ExperimentFileError(f"{path}:{number}: not JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise ExperimentFileError(f"{path}:{number}: a row is a JSON object")
        if "inputs" not in row:
            expected = row.pop("expected", None)
            row = {"inputs": row, "expected": expected}
        rows.append(row)
    return rows


def load_experiment(path: str | Path) -> ExperimentRequest:
    """Read and validate an experiment file; errors name the file and the field."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ExperimentFileError(f"{path}: cannot read it as YAML ({error})") from None
    if not isinstance(document, dict):
        raise ExperimentFileError(f"{path}: an experiment file is a mapping (name, target, ...)")
    base = path.parent
    try:
        if isinstance(document.get("configs"), str):
            document["configs"] = load_config_file(base / document["configs"])
        if isinstance(document.get("dataset"), str):
            document["dataset"] = load_dataset(base / document["dataset"])
        target = document.get("target")
        if isinstance(target, dict) and isinstance(target.get("pipeline"), str):
            pipeline = load_pipeline(base / target["pipeline"])
            target["pipeline"] = pipeline.model_dump(mode="json", exclude_none=True)
    except (ConfigFileError, PipelineFileError) as error:
        raise ExperimentFileError(str(error)) from None
    try:
        return ExperimentRequest.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(
            ".".join(str(p) for p in item["loc"]) + f": {item['msg']}"
            if item["loc"]
            else item["msg"]
            for item in error.errors()
        )
        raise ExperimentFileError(f"{path}: {problems}") from None
