"""`mahsm pipelines register|list|show`: the pipeline registry of the API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mahsm.cli.common import ApiKeyOption, ApiOption, JsonOption, console, run_client, say
from mahsm.client import MahsmClient
from mahsm.client.models import PipelinePage, RegisteredPipeline
from mahsm.pipelines.files import dump_pipeline
from mahsm.settings import Settings

app = typer.Typer(name="pipelines", help="Register and list pipelines (POST/GET /pipelines).")


@app.command()
def register(
    file: Annotated[Path, typer.Argument(help="The pipeline file (YAML).")],
    as_json: JsonOption = False,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Register a pipeline file; its version is its `version`, or the next number."""

    async def action(client: MahsmClient, settings: Settings) -> RegisteredPipeline:
        return await client.register_pipeline(file)

    stored = run_client(api, api_key, action)
    if as_json:
        typer.echo(stored.model_dump_json(indent=2))
        return
    say(f"Registered [bold]{escape(stored.name)}@{escape(stored.version)}[/bold]")
    say(f"[dim]Run it: mahsm run {escape(stored.name)} -i name=value ...[/dim]")


@app.command("list")
def list_pipelines(
    limit: Annotated[int, typer.Option(min=1, max=100, help="How many names.")] = 20,
    cursor: Annotated[str | None, typer.Option(help="Cursor printed by the previous page.")] = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """List registered pipelines by name, with their latest versions."""

    async def action(client: MahsmClient, settings: Settings) -> PipelinePage:
        return await client.list_pipelines(limit=limit, cursor=cursor)

    page = run_client(api, api_key, action)
    if as_json:
        typer.echo(page.model_dump_json(indent=2))
        return
    table = Table(title=f"{len(page.pipelines)} pipeline(s)", title_justify="left")
    for column in ("Name", "Latest", "Versions", "Registered", "Description"):
        table.add_column(column, no_wrap=column == "Name")
    for item in page.pipelines:
        table.add_row(
            item.name,
            item.latest_version,
            str(item.versions),
            item.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
            item.description or "",
        )
    console.print(table)
    if page.next_cursor:
        say(f"[dim]More: mahsm pipelines list --cursor {escape(page.next_cursor)}[/dim]")


@app.command()
def show(
    ref: Annotated[str, typer.Argument(help="name (latest version) or name@version.")],
    as_json: JsonOption = False,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Print a registered pipeline as YAML (its file form), and its versions."""

    async def action(client: MahsmClient, settings: Settings) -> Any:
        return await client.get_pipeline(ref)

    stored: RegisteredPipeline = run_client(api, api_key, action)
    if as_json:
        typer.echo(stored.model_dump_json(indent=2))
        return
    typer.echo(dump_pipeline(stored.definition), nl=False)
    versions = ", ".join(v.version for v in stored.versions)
    say(f"[dim]# versions (newest first): {escape(versions)}[/dim]")
