"""`mahsm dataset register` + an experiment naming the dataset (`dataset_ref`), end to end."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.cli.api_harness import ServedApi
from tests.cli.test_experiments_cli import (  # noqa: F401 - fixtures
    ROOT,
    experiments_api,
    mahsm,
    wide_console,
)

EXAMPLES = ROOT / "examples/experiments"


async def test_a_registered_dataset_is_named_by_an_experiment(
    experiments_api: ServedApi,  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    api = experiments_api.url
    registered = await mahsm(
        "dataset", "register", "qa-rows", str(EXAMPLES / "dataset.jsonl"), "--api", api
    )
    assert registered.exit_code == 0, registered.output
    assert "registered dataset qa-rows: 4 rows" in registered.output
    listed = await mahsm("dataset", "list", "--api", api)
    assert "qa-rows  4 rows" in listed.output

    experiment = yaml.safe_load((EXAMPLES / "experiment.yaml").read_text())
    experiment.pop("dataset")
    experiment.update(
        dataset_ref="qa-rows",
        configs=str(EXAMPLES / "configs"),
        target={"pipeline": str(EXAMPLES / "qa.pipeline.yaml")},
        mlflow=False,
    )
    path = tmp_path / "named.yaml"
    path.write_text(yaml.safe_dump(experiment))
    result = await mahsm("experiment", "run", str(path), "--wait", "--json", "--api", api)
    assert result.exit_code == 0, result.output
    state = json.loads(result.output)
    assert len(state["branches"]) == 8  # 2 configs x the dataset's 4 rows
    summary = {s["label"]: s for s in state["summary"]}
    assert summary["terse"]["mean_score"] == 1.0 and summary["chatty"]["mean_score"] == 0.0

    experiment["dataset_ref"] = "no-such-rows"
    path.write_text(yaml.safe_dump(experiment))
    unknown = await mahsm("experiment", "run", str(path), "--api", api)
    assert unknown.exit_code != 0
    assert "dataset_ref: no dataset named 'no-such-rows' (registered: qa-rows)" in " ".join(
        unknown.output.split()
    )
