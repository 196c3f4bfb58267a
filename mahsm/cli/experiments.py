"""`mahsm experiment`: run an experiment file through the API, show, list, sync to MLflow."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mahsm.cli.artifacts import _call
from mahsm.cli.common import (
    ApiKeyOption,
    ApiOption,
    ExitCode,
    JsonOption,
    console,
    fail,
    load_cli_settings,
    say,
)
from mahsm.experiments.files import ExperimentFileError, load_experiment
from mahsm.experiments.models import ExperimentState

app = typer.Typer(name="experiment", help="Compare configs of a target; log them to MLflow.")


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def comparison_table(state: ExperimentState) -> Table:
    """Config, score ± interval, pass rate, p95 latency, cost per row, errors."""
    table = Table(title=f"{state.name} ({state.experiment_id}): {state.status}")
    for column in ("config", "label", "score ± 95%", "pass", "p95 s", "cost/row $", "errors"):
        table.add_column(column)
    for summary in state.summary:
        mark = " *" if summary.config_id == state.winner else ""
        score = (
            "-"
            if summary.mean_score is None
            else f"{summary.mean_score:.3f} ± {_fmt(summary.ci95)}"
        )
        table.add_row(
            summary.config_id + mark,
            summary.label[:40],
            score,
            _fmt(summary.pass_rate, 2),
            _fmt(summary.p95_latency_s, 2),
            f"{summary.cost_per_row:.6f}",
            str(summary.errors),
        )
    return table


def plot(state: ExperimentState, path: Path) -> None:
    """Score against cost per config, as a PNG (needs matplotlib: `pip install mahsm[plot]`)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        fail("--plot needs matplotlib: pip install 'mahsm[plot]'", ExitCode.USAGE)
    figure, axes = plt.subplots(figsize=(6, 4))
    for summary in state.summary:
        if summary.mean_score is None:
            continue
        axes.errorbar(
            summary.cost_per_row, summary.mean_score, yerr=summary.ci95 or 0.0, fmt="o", capsize=3
        )
        axes.annotate(summary.label[:30], (summary.cost_per_row, summary.mean_score))
    axes.set_xlabel("cost per row (USD)")
    axes.set_ylabel("mean score")
    axes.set_title(state.name)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _show(state: ExperimentState, as_json: bool) -> None:
    if as_json:
        console.print_json(state.model_dump_json())
        return
    console.print(comparison_table(state))
    if state.primary is not None:
        say(f"primary: {state.primary.status} {state.primary.output!r}")
    error = f" ({state.mlflow.error})" if state.mlflow.error else ""
    say(f"mlflow: {state.mlflow.status}{error}")


def _state(experiment_id: str, api: str | None, key: str | None) -> ExperimentState:
    return ExperimentState.model_validate(_call("GET", f"/experiments/{experiment_id}", api, key))


@app.command("run")
def run(
    file: Annotated[Path, typer.Argument(help="Experiment YAML (docs/experiments.md).")],
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Wait and print the table.")] = False,
    as_json: JsonOption = False,
    plot_file: Annotated[
        Path | None, typer.Option("--plot", help="Write score against cost as a PNG.")
    ] = None,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Start the experiment of FILE; with --wait, follow it and print the comparison."""
    try:
        request = load_experiment(file)
    except ExperimentFileError as error:
        fail(str(error), ExitCode.USAGE)
    accepted = _call("POST", "/experiments", api, api_key, request.model_dump(mode="json"))
    experiment_id = accepted["id"]
    if not wait:
        say(json.dumps(accepted) if as_json else experiment_id)
        return
    while True:
        state = _state(experiment_id, api, api_key)
        if state.status != "running":
            break
        time.sleep(0.5)
    _show(state, as_json)
    if plot_file is not None:
        plot(state, plot_file)
    if state.status == "failed":
        raise typer.Exit(int(ExitCode.TASK_FAILED))


@app.command("show")
def show(
    experiment_id: str,
    as_json: JsonOption = False,
    plot_file: Annotated[Path | None, typer.Option("--plot")] = None,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Show an experiment: per-config summary (or JSON with every branch)."""
    state = _state(experiment_id, api, api_key)
    _show(state, as_json)
    if plot_file is not None:
        plot(state, plot_file)


@app.command("list")
def list_experiments(api: ApiOption = None, api_key: ApiKeyOption = None) -> None:
    """Experiments, newest first."""
    page: dict[str, Any] = _call("GET", "/experiments", api, api_key)
    table = Table()
    for column in ("id", "name", "strategy", "status", "started"):
        table.add_column(column)
    for item in page["experiments"]:
        table.add_row(
            item["id"],
            item.get("name") or "",
            item.get("strategy") or "",
            item["status"],
            item.get("started_at") or "",
        )
    console.print(table)


@app.command("sync")
def sync(
    experiment_id: str,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI [default: the settings' one].")
    ] = None,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Log a finished experiment to MLflow again (idempotent: existing runs are kept)."""
    from mahsm.experiments.mlflow_sync import log_experiment

    state = _state(experiment_id, api, api_key)
    if state.status == "running":
        fail(f"{experiment_id} is still running; sync it once it has ended", ExitCode.CONFLICT)
    uri = tracking_uri or load_cli_settings().mlflow_uri()
    try:
        result = log_experiment(state, uri)
    except Exception as error:  # MLflow raises many kinds; all mean "not reachable/usable"
        fail(
            f"MLflow at {uri} refused the sync: {type(error).__name__}: {error}",
            ExitCode.UNREACHABLE,
        )
    say(f"synced {result.runs} runs to MLflow experiment {result.experiment_id} at {uri}")
