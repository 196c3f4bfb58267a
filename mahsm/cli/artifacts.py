"""`mahsm artifacts list|show|export|import`: prompt artifacts through the REST API.

Exit codes as for the task commands (docs/cli.md): 0 ok, 2 usage or bad file, 3 not found,
5 API unreachable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.table import Table

from mahsm.cli.common import (
    ApiKeyOption,
    ApiOption,
    ExitCode,
    JsonOption,
    api_url,
    console,
    fail,
    load_cli_settings,
    say,
)
from mahsm.prompt.store import export_file, parse_ref, read_file

app = typer.Typer(name="artifacts", help="Prompt artifacts (DSPy program state): see docs/dspy.md.")

Ref = Annotated[str, typer.Argument(help="NAME or NAME@VERSION (NAME alone: the latest).")]


def _call(method: str, path: str, api: str | None, key: str | None, body: Any = None) -> Any:
    url = api_url(load_cli_settings(), api) + path
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.request(method, url, json=body, headers=headers, timeout=30)
    except httpx.HTTPError as error:
        fail(f"the API at {url} is unreachable: {error}", ExitCode.UNREACHABLE)
    if response.status_code >= 400:
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text
        code = {404: ExitCode.NOT_FOUND, 503: ExitCode.UNREACHABLE}.get(
            response.status_code, ExitCode.USAGE
        )
        fail(f"{message} (HTTP {response.status_code})", code)
    return response.json()


def _path(ref: str) -> str:
    name, version = parse_ref(ref)
    return f"/artifacts/{name}" + (f"/{version}" if version else "")


@app.command("list")
def list_artifacts(
    api: ApiOption = None, api_key: ApiKeyOption = None, json_: JsonOption = False
) -> None:
    """Every artifact name with its latest version."""
    items = _call("GET", "/artifacts", api, api_key)
    if json_:
        console.print_json(data=items)
        return
    table = Table("name", "latest", "versions", "updated")
    for item in items:
        table.add_row(item["name"], str(item["latest"]), str(item["versions"]), item["updated_at"])
    console.print(table)


@app.command()
def show(ref: Ref, api: ApiOption = None, api_key: ApiKeyOption = None) -> None:
    """One artifact version as JSON (program state, tool schemas, model, hash)."""
    console.print_json(data=_call("GET", _path(ref), api, api_key))


@app.command()
def export(
    ref: Ref,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder to write NAME_vN.json in.")
    ] = Path("."),
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Write an artifact to NAME_vN.json (atomically)."""
    path = export_file(_call("GET", _path(ref), api, api_key), out)
    say(f"wrote {path}")


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="An exported NAME_vN.json.", exists=True)],
    name: Annotated[str | None, typer.Option(help="Store under this name instead.")] = None,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Store an exported artifact as a version (the same content: its existing version)."""
    try:
        found, content = read_file(file)
    except ValueError as error:
        fail(str(error), ExitCode.USAGE)
    data = json.loads(file.read_text(encoding="utf-8"))
    body = {**content, "name": name or found, "content_hash": data.get("content_hash")}
    ref = _call("POST", "/artifacts", api, api_key, body)
    say(f"{ref['name']}@{ref['version']}")
