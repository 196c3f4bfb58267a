"""`mahsm usage`: LLM calls, tokens and cost summed by model, user, day or task (`GET /usage`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode

import typer
from rich.table import Table

from mahsm.cli.artifacts import _call  # one way to call the REST API from a command
from mahsm.cli.common import ApiKeyOption, ApiOption, JsonOption, console
from mahsm.contracts.usage import UsageGroup, UsageReport

app = typer.Typer()


@app.command()
def usage(
    group_by: Annotated[
        UsageGroup, typer.Option("--group-by", "-g", help="Sum by model, user, day or task.")
    ] = UsageGroup.MODEL,
    since: Annotated[
        datetime | None,
        typer.Option(help="Only tasks created at or after this date/time (UTC), e.g. 2026-01-31."),
    ] = None,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
    json_: JsonOption = False,
) -> None:
    """Tokens and cost of your tasks (everyone's with an admin key), as the task states sum them."""
    query = {"group_by": group_by.value} | ({"since": since.isoformat()} if since else {})
    report = UsageReport.model_validate(_call("GET", "/usage?" + urlencode(query), api, api_key))
    if json_:
        console.print_json(report.model_dump_json())
        return
    table = Table(group_by.value, "tasks", "calls", "input tokens", "output tokens", "cost (USD)")
    for row in [*report.rows, report.total]:
        key = "total" if row is report.total else (row.key or "-")
        table.add_row(
            key,
            str(row.tasks),
            str(row.calls),
            str(row.input_tokens),
            str(row.output_tokens),
            f"{row.cost_usd:.6f}",
            end_section=row is report.rows[-1] if report.rows else False,
        )
    console.print(table)
    console.print(f"[dim]scope: {report.scope}[/dim]")
