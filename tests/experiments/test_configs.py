"""Configs: stable ids, grid expansion, files and folders, submit-time checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from mahsm.experiments.configs import (
    ConfigFileError,
    ExperimentConfig,
    GridError,
    expand_grid,
    expand_model,
    load_config_file,
)
from mahsm.experiments.files import ExperimentFileError, load_experiment
from mahsm.experiments.models import ExperimentRequest

PIPELINE = {
    "name": "qa",
    "inputs": {"q": "str"},
    "steps": [
        {"name": "answer", "kind": "llm", "prompt": "Q: {q}"},
        {"name": "check", "kind": "llm", "prompt": "Check {answer}", "model": "scripted/x"},
    ],
}


def test_config_id_is_the_same_for_the_same_overrides_in_any_order_and_process() -> None:
    one = ExperimentConfig.model_validate({"temperature": 0.5, "model": "openai/gpt-4o-mini"})
    two = ExperimentConfig.model_validate(
        {"model": "openai/gpt-4o-mini", "temperature": 0.5, "label": "named", "inputs": {}}
    )
    other = ExperimentConfig.model_validate({"temperature": 0.7, "model": "openai/gpt-4o-mini"})
    code = (
        "from mahsm.experiments.configs import ExperimentConfig as C;"
        "print(C(model='openai/gpt-4o-mini', temperature=0.5).config_id)"
    )
    elsewhere = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert one.config_id == two.config_id == elsewhere
    assert one.config_id != other.config_id
    assert len(one.config_id) == 12 and one.config_id.startswith("c")


def test_grid_expands_every_combination_in_key_order() -> None:
    grid = {"temperature": [0, 0.7], "model": ["scripted/a", "scripted/b"], "inputs.tone": ["x"]}
    configs = expand_grid(grid)
    assert configs == [
        {"temperature": 0, "model": "scripted/a", "inputs": {"tone": "x"}},
        {"temperature": 0, "model": "scripted/b", "inputs": {"tone": "x"}},
        {"temperature": 0.7, "model": "scripted/a", "inputs": {"tone": "x"}},
        {"temperature": 0.7, "model": "scripted/b", "inputs": {"tone": "x"}},
    ]
    ids = [ExperimentConfig.model_validate(c).config_id for c in configs]
    assert ids == [ExperimentConfig.model_validate(c).config_id for c in expand_grid(grid)]
    assert len(set(ids)) == 4


def test_grid_from_a_pydantic_model() -> None:
    class Sweep(BaseModel):
        temperature: list[float] = [0.0, 1.0]
        max_tokens: list[int] = [64]

    assert expand_model(Sweep) == [
        {"temperature": 0.0, "max_tokens": 64},
        {"temperature": 1.0, "max_tokens": 64},
    ]


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"colour": [1]}, "grid.colour: not a config field"),
        ({"temperature": 0.5}, "grid.temperature: give a non-empty list"),
        ({"max_tokens": list(range(1, 66))}, "expands to 65 configs"),
    ],
)
def test_bad_grids_name_the_key(grid: dict[str, object], message: str) -> None:
    with pytest.raises(GridError, match=message):
        expand_grid(grid)  # type: ignore[arg-type]


def _request(**extra: object) -> ExperimentRequest:
    body = {"name": "t", "target": {"pipeline": PIPELINE}, "inputs": {"q": "x"}, **extra}
    return ExperimentRequest.model_validate(body)


def test_invalid_configs_fail_with_index_and_field() -> None:
    with pytest.raises(ValidationError) as caught:
        _request(configs=[{"temperature": 0.1}, {"max_iterations": 0}])
    assert caught.value.errors()[0]["loc"] == ("configs", 1, "max_iterations")
    with pytest.raises(ValidationError, match="configs.0.temperature: applies to pipeline"):
        ExperimentRequest.model_validate(
            {
                "name": "t",
                "target": {"description": "Answer this well"},
                "configs": [{"temperature": 1}],
            }
        )
    missing = r"target.description: \{q\} has no value in dataset.1"
    with pytest.raises(ValidationError, match=missing):
        ExperimentRequest.model_validate(
            {
                "name": "t",
                "target": {"description": "Answer {q} well"},
                "configs": [{}],
                "dataset": [{"inputs": {"q": "a"}}, {"inputs": {"z": "b"}}],
            }
        )
    with pytest.raises(ValidationError, match="configs.1: the same overrides as configs.0"):
        _request(configs=[{"temperature": 0.1}, {"temperature": 0.1, "label": "again"}])


def test_a_config_overrides_sampling_and_models_of_every_llm_step() -> None:
    from mahsm.experiments.apply import branch_request

    request = _request(configs=[{"temperature": 0.3, "max_tokens": 50, "model": "scripted/y"}])
    task = branch_request(request, request.configs[0], {"q": "row"})
    assert task.pipeline is not None and task.inputs == {"q": "row"}
    steps = task.pipeline.steps
    assert [(s.temperature, s.max_tokens) for s in steps] == [(0.3, 50), (0.3, 50)]  # type: ignore[union-attr]
    assert steps[1].model == "scripted/y" and task.options.model == "scripted/y"


def test_configs_and_datasets_from_files_and_folders(tmp_path: Path) -> None:
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "a.yaml").write_text("temperature: 0.1\n")
    (folder / "b.yaml").write_text("- {temperature: 0.2}\n- {temperature: 0.3, label: hot}\n")
    (tmp_path / "rows.jsonl").write_text('{"q": "2+2", "expected": "4"}\n{"inputs": {"q": "1"}}\n')
    (tmp_path / "exp.yaml").write_text(
        "name: files\ntarget: {pipeline: {name: qa, inputs: {q: str},"
        " steps: [{name: a, kind: llm, prompt: 'Q: {q}'}]}}\n"
        "configs: configs\ndataset: rows.jsonl\nmetrics: [{kind: exact_match}]\n"
    )
    request = load_experiment(tmp_path / "exp.yaml")
    assert [c.temperature for c in request.configs] == [0.1, 0.2, 0.3]
    assert request.dataset is not None
    rows = [(r.inputs, r.expected) for r in request.dataset]
    assert rows == [({"q": "2+2"}, "4"), ({"q": "1"}, None)]
    (folder / "c.yaml").write_text("temprature: 1\n")
    with pytest.raises(ConfigFileError, match="c.yaml: config 0: temprature: Extra inputs"):
        load_config_file(folder)
    with pytest.raises(ExperimentFileError, match="c.yaml"):
        load_experiment(tmp_path / "exp.yaml")
