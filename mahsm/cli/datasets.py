"""`mahsm dataset export` (finished tasks as a JSONL dataset), `register` and `list`.

Each task becomes a row `{"id": <task id>, "inputs": {"description": ...}, "expected": ...}`:
the expected value is the task's result (a pipeline run's single output, or its outputs
object). Use it with a description target `"{description}"` to test a new config on real
traffic (docs/experiments.md).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from mahsm.cli.artifacts import _call
from mahsm.cli.common import ApiKeyOption, ApiOption, ExitCode, fail, say

app = typer.Typer(name="dataset", help="Datasets for experiments.")

MAX_ROWS = 10_000


def task_row(task: dict[str, Any]) -> dict[str, Any]:
    """A task (as `GET /tasks` lists it) as a dataset row."""
    outputs = task.get("outputs")
    if isinstance(outputs, dict) and len(outputs) == 1:
        expected: Any = next(iter(outputs.values()))
    elif outputs:
        expected = outputs
    else:
        expected = task.get("result")
    return {"id": task["id"], "inputs": {"description": task["description"]}, "expected": expected}


@app.command("export")
def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="JSONL file to write.")],
    status: Annotated[str, typer.Option(help="Tasks with this status.")] = "completed",
    since: Annotated[datetime | None, typer.Option(help="Created at or after (ISO 8601).")] = None,
    user: Annotated[str | None, typer.Option(help="Tasks of this user.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows.", min=1)] = 1000,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Write finished tasks (newest first) as dataset rows."""
    if limit > MAX_ROWS:
        fail(f"--limit: at most {MAX_ROWS}", ExitCode.USAGE)
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while len(rows) < limit:
        query = [f"status={status}", f"limit={min(100, limit - len(rows))}"]
        if since is not None:
            query.append(f"created_after={since.isoformat()}")
        if user is not None:
            query.append(f"user_id={user}")
        if cursor is not None:
            query.append(f"cursor={cursor}")
        page = _call("GET", "/tasks?" + "&".join(query), api, api_key)
        rows += [task_row(task) for task in page["tasks"]]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    output.write_text(
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8"
    )
    say(f"wrote {len(rows)} rows to {output}")


@app.command("register")
def register(
    name: Annotated[str, typer.Argument(help="The dataset's name (a-z, 0-9, _ . -).")],
    file: Annotated[Path, typer.Argument(help="JSONL file of rows (as `export` writes).")],
    description: Annotated[str | None, typer.Option(help="What the rows are.")] = None,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Register FILE's rows under NAME; experiments then name it with `dataset_ref: NAME`."""
    from mahsm.experiments.files import ExperimentFileError, load_dataset

    try:
        rows = load_dataset(file)
    except ExperimentFileError as error:
        fail(str(error), ExitCode.USAGE)
    body = {"name": name, "rows": rows, "description": description}
    stored = _call("POST", "/datasets", api, api_key, body)
    digest = stored["digest"][:12]
    say(f"registered dataset {stored['name']}: {stored['rows']} rows (sha256 {digest})")


@app.command("list")
def list_datasets(api: ApiOption = None, api_key: ApiKeyOption = None) -> None:
    """The registered datasets."""
    for item in _call("GET", "/datasets", api, api_key)["datasets"]:
        say(f"{item['name']}  {item['rows']} rows  {item.get('description') or ''}".rstrip())
