"""`mahsm demo`: three bundled scripted tasks end to end, with the live view.

Uses the running stack when its API answers; otherwise starts the embedded stack (as
`mahsm up` does), runs the demo and stops it again (`--keep-running` keeps it up). The tasks
use the model `scripted/demo` (mahsm/scenarios/demo.yaml), so no API key is needed.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from types import FrameType
from typing import Annotated

import httpx
import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from mahsm.cli.common import (
    ApiKeyOption,
    ApiOption,
    ExitCode,
    api_url,
    console,
    errors,
    fail,
    follow,
    load_cli_settings,
    run_async,
    say,
    task_link,
)
from mahsm.cli.live import styled_status
from mahsm.client import MahsmClient
from mahsm.contracts.task import TaskStatus
from mahsm.devstack.lock import StackAlreadyRunning
from mahsm.devstack.stack import DevStack, StackError
from mahsm.logging import configure_logging
from mahsm.settings import Settings

app = typer.Typer()

DEMO_MODEL = "scripted/demo"


@dataclass(frozen=True)
class Scenario:
    """One demo task and the outcome it is meant to have."""

    title: str
    description: str
    expected: TaskStatus
    explanation: str


SCENARIOS = (
    Scenario(
        "Simple task",
        "What is the factorial of 10? Use the calculator.",
        TaskStatus.COMPLETED,
        "One subtask; the agent calls the calculator tool (10!) and reports the value.",
    ),
    Scenario(
        "Multi-step task with dependencies",
        "Analyze our quarterly sales: collect the figures, compute the growth, write a report.",
        TaskStatus.COMPLETED,
        "collect_sales -> compute_growth -> write_report: each step starts when its"
        " dependency is done and gets its output as context.",
    ),
    Scenario(
        "Task with a failing branch",
        "Build the inventory dashboard from the legacy feed and the supplier list.",
        TaskStatus.FAILED,
        "legacy_feed fails (the scripted model answers HTTP 400), so merge_dashboard is"
        " blocked while the independent supplier_list still completes. This failure is expected.",
    ),
)

REAL_MODEL_HINT = """\
[bold]Use a real model[/bold]
  OpenAI:     export OPENAI_API_KEY=sk-...
  Anthropic:  export ANTHROPIC_API_KEY=sk-ant-...
  An OpenAI-compatible server (vLLM, Ollama, llama.cpp):
    export OPENAI_BASE_URL=http://localhost:11434/v1 OPENAI_API_KEY=unused
  Then set the workers' default model and restart `mahsm up`:
    export MAHSM_DEFAULT_MODEL=openai/gpt-4o-mini  (or anthropic/claude-...)
  or choose it per task:
    mahsm submit "Summarise ..." --model openai/gpt-4o-mini --wait"""


def _api_answers(url: str) -> bool:
    try:
        httpx.get(f"{url}/health", timeout=2.0)
    except httpx.HTTPError:
        return False
    return True


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _still_stopping(_signum: int, _frame: FrameType | None) -> None:
    errors.print("Still stopping; please wait.")


async def _run_scenarios(
    url: str, api_key: str | None, settings: Settings
) -> list[tuple[Scenario, str, TaskStatus]]:
    outcomes: list[tuple[Scenario, str, TaskStatus]] = []
    async with MahsmClient.rest(url, api_key) as client:
        for number, scenario in enumerate(SCENARIOS, start=1):
            console.rule(f"[bold]{number}/{len(SCENARIOS)}  {scenario.title}[/bold]")
            console.print(f"[bold]Task:[/bold] {escape(scenario.description)}")
            console.print(f"[dim]{escape(scenario.explanation)}[/dim]")
            task_id = await client.submit(scenario.description, model=DEMO_MODEL)
            say(f"[dim]Temporal UI:[/dim] {escape(task_link(client, settings, task_id))}")
            final = await follow(client, task_id, poll_s=0.25)
            if final.status == scenario.expected == TaskStatus.FAILED:
                console.print(
                    "[yellow]This failure is expected: it shows failure handling.[/yellow]"
                )
            outcomes.append((scenario, task_id, final.status))
    return outcomes


def print_summary(outcomes: list[tuple[Scenario, str, TaskStatus]]) -> bool:
    """Print each scenario's task and outcome; True when every outcome was the expected one."""
    table = Table(title="Demo summary", title_justify="left")
    id_width = max((len(task_id) for _, task_id, _ in outcomes), default=4)
    table.add_column("Scenario")
    # Task ids are never wrapped or cut: they are meant to be copied.
    table.add_column("Task", no_wrap=True, min_width=id_width)
    table.add_column("Outcome")
    ok = True
    for scenario, task_id, got in outcomes:
        matched = got == scenario.expected
        ok = ok and matched
        verdict = (
            Text(", as expected", style="green")
            if matched
            else Text(f", UNEXPECTED (expected {scenario.expected.value})", style="red")
        )
        table.add_row(scenario.title, task_id, Text.assemble(styled_status(got), verdict))
    console.print(table)
    return ok


def _demo(url: str, api_key: str | None, settings: Settings) -> ExitCode:
    outcomes = run_async(_run_scenarios(url, api_key, settings))
    ok = print_summary(outcomes)
    console.print(Panel(REAL_MODEL_HINT, border_style="blue"))
    if not ok:
        errors.print("[red]The demo did not end as expected; see the tables above.[/red]")
    return ExitCode.OK if ok else ExitCode.TASK_FAILED


@app.command()
def demo(
    keep_running: Annotated[
        bool,
        typer.Option("--keep-running", help="Leave the embedded stack up after the demo."),
    ] = False,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Run three scripted tasks end to end (a simple one, a DAG, a failing branch)."""
    settings = load_cli_settings()
    url = api_url(settings, api)
    if _api_answers(url):
        console.print(f"Using the MAHSM API at {url}.")
        raise typer.Exit(int(_demo(url, api_key, settings)))
    if api:
        fail(f"no MAHSM API answers at {url}; start it with `mahsm up`.", ExitCode.UNREACHABLE)

    configure_logging(level=settings.log_level, fmt=settings.log_format)
    console.print(f"No API at {url}: starting the embedded stack (as `mahsm up` does) ...")
    stack = DevStack(settings, on_step=lambda line: console.print(f"[dim]{escape(line)}[/dim]"))
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    for signum in handled:
        signal.signal(signum, _interrupt)
    code = ExitCode.OK
    try:
        info = stack.start()
        console.print(
            f"[green]Stack up[/green]: API {info.api_url}, Temporal UI {info.temporal_ui_url}"
        )
        code = _demo(info.api_url, api_key, settings)
        if keep_running:
            console.print("The stack keeps running; press Ctrl-C to stop it.")
            stack.wait()
    except KeyboardInterrupt:
        console.print("Interrupted.")
        code = ExitCode.INTERRUPTED
    except StackAlreadyRunning as error:
        errors.print(f"[red]{escape(str(error))}[/red]")
        code = ExitCode.UNREACHABLE
    except StackError as error:
        errors.print(f"[red]{escape(str(error))}[/red]")
        code = ExitCode.UNREACHABLE
    finally:
        for signum in handled:
            signal.signal(signum, _still_stopping)
        console.print("Stopping the embedded stack ...")
        stack.stop()
        console.print("Stack stopped.")
    raise typer.Exit(int(code))
