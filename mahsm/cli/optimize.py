"""`mahsm optimize`: start a DSPy optimization run through the API, optionally follow it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from mahsm.cli.artifacts import _call
from mahsm.cli.common import ApiKeyOption, ApiOption, ExitCode, console, fail, say
from mahsm.optimize.models import OptimizeRequest

app = typer.Typer()


def _jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as error:
        fail(f"cannot read {path} as JSON lines: {error}", ExitCode.USAGE)


@app.command()
def optimize(
    program: Annotated[str, typer.Option(help="PATH:Class (module:Class) of a dspy.Module.")],
    trainset: Annotated[Path, typer.Option(help="Training examples, JSON lines.", exists=True)],
    save: Annotated[str, typer.Option(help="Artifact name to save the result as.")],
    devset: Annotated[
        Path | None, typer.Option(help="Dev examples (JSON lines), for scores.", exists=True)
    ] = None,
    metric: Annotated[str, typer.Option(help="exact_match|contains|f1|MODULE:function")] = (
        "exact_match"
    ),
    optimizer: Annotated[str, typer.Option(help="bootstrap_fewshot")] = "bootstrap_fewshot",
    model: Annotated[str, typer.Option(help="provider/model of the program's LM.")] = (
        "scripted/optimize"
    ),
    inputs: Annotated[
        str | None, typer.Option(help="Input fields, comma separated (default: all but last).")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Follow it until it ends.")] = False,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Optimize a DSPy program on the workers; the result is a new artifact version."""
    try:
        request = OptimizeRequest(
            program=program,
            trainset=_jsonl(trainset),
            devset=_jsonl(devset) if devset else [],
            metric=metric,
            optimizer=optimizer,
            save=save,
            model=model,
            inputs=inputs.split(",") if inputs else None,
        )
    except ValidationError as error:
        fail(f"invalid options: {error}", ExitCode.USAGE)
    run_id = _call("POST", "/optimizations", api, api_key, request.model_dump(mode="json"))["id"]
    say(run_id)
    if not wait:
        return
    while True:
        state = _call("GET", f"/optimizations/{run_id}", api, api_key)
        progress = state["progress"]
        console.print(
            f"{progress['stage']}: {progress['done']}/{progress['planned']} evaluations,"
            f" best score {progress['best_score']}"
        )
        if state["status"] != "running":
            break
        time.sleep(1.0)
    if state["status"] == "failed":
        fail(state.get("error") or "the run failed", ExitCode.TASK_FAILED)
    result = state["result"]
    say(
        f"saved {result['artifact']}@{result['version']}: score {result['score']}"
        f" (baseline {result['baseline_score']}), {result['demos']} demos"
    )
