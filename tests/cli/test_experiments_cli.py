"""`mahsm experiment` end to end: the shipped example (examples/experiments) through the real
API on a real engine, on the bundled `experiments` scenario; MLflow on a SQLite store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
import yaml
from click.testing import Result
from mlflow import MlflowClient
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from mahsm.cli import common as cli_common
from mahsm.cli.main import app
from tests.cli.api_harness import ServedApi, served_api

ROOT = Path(__file__).parents[2]
EXAMPLE = str(ROOT / "examples/experiments/experiment.yaml")
SCENARIO = yaml.safe_load((ROOT / "mahsm/scenarios/experiments.yaml").read_text())


@pytest.fixture(autouse=True)
def wide_console() -> None:
    cli_common.console.width = 200
    cli_common.errors.width = 200


@pytest_asyncio.fixture(loop_scope="session")
async def experiments_api(
    temporal_env: WorkflowEnvironment, db_pool: asyncpg.Pool, database_url: str, data_dir: Path
) -> AsyncIterator[ServedApi]:
    async with served_api(
        temporal_env=temporal_env,
        pool=db_pool,
        database_url=database_url,
        data_dir=data_dir,
        scenario=SCENARIO,
    ) as served:
        yield served


async def mahsm(*args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


async def test_run_the_example_prints_the_comparison_plots_it_and_syncs_to_mlflow(
    experiments_api: ServedApi, tmp_path: Path
) -> None:
    api = experiments_api.url
    plot = tmp_path / "scores.png"
    result = await mahsm("experiment", "run", EXAMPLE, "--wait", "--json", "--api", api)
    assert result.exit_code == 0, result.output
    state = json.loads(result.output)
    summary = {s["label"]: s for s in state["summary"]}
    terse, chatty = summary["terse"], summary["chatty"]
    assert (terse["mean_score"], terse["scores"]["numeric"]) == (1.0, 1.0)
    assert (chatty["mean_score"], chatty["scores"]["numeric"]) == (0.0, 0.75)
    assert chatty["cost_per_row"] > terse["cost_per_row"] > 0
    assert state["winner"] == terse["config_id"]
    assert state["mlflow"]["status"] == "synced" and state["mlflow"]["runs"] == 8
    assert len(state["branches"]) == 8

    experiment_id = state["experiment_id"]
    shown = await mahsm("experiment", "show", experiment_id, "--plot", str(plot), "--api", api)
    assert shown.exit_code == 0, shown.output
    assert f"{terse['config_id']} *" in shown.output  # the winner is marked
    assert "1.000 ± 0.000" in shown.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    listed = await mahsm("experiment", "list", "--api", api)
    assert state["experiment_id"] in listed.output

    uri = f"sqlite:///{tmp_path / 'other.db'}"
    synced = await mahsm(
        "experiment", "sync", state["experiment_id"], "--tracking-uri", uri, "--api", api
    )
    assert synced.exit_code == 0, synced.output
    assert "synced 8 runs" in synced.output
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(f"qa styles [{state['experiment_id']}]")
    assert experiment is not None
    assert len(client.search_runs([experiment.experiment_id])) == 10  # 2 parents, 8 rows


async def test_run_refuses_a_bad_file_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntarget: {description: 'Answer the question'}\nconfigs: [{tempo: 1}]\n")
    result = await mahsm("experiment", "run", str(bad), "--api", "http://127.0.0.1:9")
    assert result.exit_code == 2
    assert "configs.0.tempo" in result.output


async def test_dataset_export_turns_finished_tasks_into_rows(
    api: ServedApi, tmp_path: Path
) -> None:
    from tests.cli.api_harness import FACTORIAL

    user = f"export-{tmp_path.name}"[:60]
    submitted = await mahsm(
        "submit", FACTORIAL, "--wait", "--model", "scripted/demo", "--user", user, "--api", api.url
    )
    assert submitted.exit_code == 0, submitted.output
    out = tmp_path / "rows.jsonl"
    for _ in range(50):  # the projection is written a moment after the task ends
        result = await mahsm("dataset", "export", "-o", str(out), "--user", user, "--api", api.url)
        assert result.exit_code == 0, result.output
        if "wrote 1 rows" in result.output:
            break
        await asyncio.sleep(0.2)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["id"].startswith("task-")
    assert rows[0]["inputs"] == {"description": FACTORIAL}
    assert "3628800" in rows[0]["expected"]
