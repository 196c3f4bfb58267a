"""Task commands: `submit`, `status`, `list`, `cancel`, `approve`, `agents`.

They talk to the REST API: `--api`, else `MAHSM_API_URL`, else `http://{api_host}:{api_port}`
from the settings. Exit codes (docs/cli.md): 0 ok / task completed, 1 task failed, timed out
or cancelled, 2 usage or configuration error, 3 task not found, 4 conflict, 5 service
unreachable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from mahsm.cli.live import LiveTask, cost, outcome, styled_status, task_view, tokens
from mahsm.client import (
    AuthError,
    Conflict,
    InvalidRequest,
    MahsmClient,
    MahsmError,
    ServiceUnavailable,
    TaskNotFound,
)
from mahsm.contracts.task import Plan, TaskOptions, TaskRequest, TaskState, TaskStatus
from mahsm.settings import Settings, SettingsError, load_settings
from mahsm.tasks import temporal_ui_link

app = typer.Typer()
console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)

T = TypeVar("T")


class ExitCode(IntEnum):
    """Exit codes of the task commands."""

    OK = 0
    TASK_FAILED = 1
    USAGE = 2
    NOT_FOUND = 3
    CONFLICT = 4
    UNREACHABLE = 5


_EXIT_CODES: list[tuple[type[MahsmError], ExitCode]] = [
    (TaskNotFound, ExitCode.NOT_FOUND),
    (Conflict, ExitCode.CONFLICT),
    (ServiceUnavailable, ExitCode.UNREACHABLE),
    (AuthError, ExitCode.USAGE),
    (InvalidRequest, ExitCode.USAGE),
]

ApiOption = Annotated[
    str | None,
    typer.Option(
        "--api",
        envvar="MAHSM_API_URL",
        help="Base URL of the MAHSM API [default: http://{MAHSM_API_HOST}:{MAHSM_API_PORT}].",
        show_default=False,
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="MAHSM_API_KEY",
        help="API key, sent as a bearer token (needed when the API has MAHSM_API_KEYS).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def fail(message: str, code: ExitCode) -> NoReturn:
    """Print `message` to stderr and exit with `code`."""
    errors.print(f"[red]{escape(message)}[/red]")
    raise typer.Exit(int(code))


def load_cli_settings() -> Settings:
    """The process settings; a bad configuration exits with code 2."""
    try:
        return load_settings()
    except SettingsError as error:
        fail(str(error), ExitCode.USAGE)


def api_url(settings: Settings, api: str | None) -> str:
    """`--api` / MAHSM_API_URL, else the API address of the settings."""
    if api:
        return api.rstrip("/")
    host = settings.api_host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.api_port}"


def task_link(client: MahsmClient, settings: Settings, task_id: str) -> str:
    """The task's Temporal UI page: the API's link when known, else from the settings."""
    return client.link(task_id) or temporal_ui_link(
        settings.temporal_ui_url, settings.temporal_namespace, task_id
    )


def exit_code_of(state: TaskState) -> ExitCode:
    """0 unless the task ended without completing."""
    if state.status.is_terminal and state.status != TaskStatus.COMPLETED:
        return ExitCode.TASK_FAILED
    return ExitCode.OK


def run_client(
    api: str | None,
    api_key: str | None,
    action: Callable[[MahsmClient, Settings], Awaitable[T]],
) -> T:
    """Run `action` with a REST client; client errors exit with their documented code."""
    settings = load_cli_settings()

    async def main() -> T:
        async with MahsmClient.rest(api_url(settings, api), api_key) as client:
            return await action(client, settings)

    return run_async(main())


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, mapping `MahsmError`s to exit codes."""
    try:
        return asyncio.run(coro)
    except MahsmError as error:
        code = next((c for kind, c in _EXIT_CODES if isinstance(error, kind)), ExitCode.TASK_FAILED)
        fail(f"{error.message} [{error.code}]", code)


def load_plan(path: Path) -> Plan:
    """A plan from a JSON or YAML file; problems exit with code 2."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        fail(f"cannot read plan file {path}: {error}", ExitCode.USAGE)
    if isinstance(raw, dict) and "plan" in raw and "subtasks" not in raw:
        raw = raw["plan"]
    try:
        return Plan.model_validate(raw)
    except ValidationError as error:
        fail(f"invalid plan in {path}:\n{error}", ExitCode.USAGE)


async def follow(
    client: MahsmClient, task_id: str, *, link: str | None, poll_s: float = 0.5
) -> TaskState:
    """Show the live view until the task ends, then its result; returns the final state."""
    with LiveTask(console, link=link) as live:
        final = await client.wait(task_id, on_progress=live.update, poll_s=poll_s)
    console.print(outcome(final))
    return final


# Fields of TaskRequest/TaskOptions named the way `submit` spells them.
_FLAGS = {
    "description": "DESCRIPTION",
    "model": "--model (provider/model, e.g. openai/gpt-4o-mini)",
    "max_parallel": "--max-parallel",
    "user_id": "--user",
}


@app.command()
def submit(
    description: Annotated[str, typer.Argument(help="What to do, in plain language.")],
    wait: Annotated[
        bool, typer.Option("--wait", "-w", help="Follow the task live until it ends.")
    ] = False,
    plan: Annotated[
        Path | None,
        typer.Option(help="JSON or YAML file with an explicit plan (skips planning).", exists=True),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="LLM as provider/model, e.g. openai/gpt-4o-mini.")
    ] = None,
    max_parallel: Annotated[
        int | None, typer.Option(help="Subtasks run at the same time (1-64).", show_default=False)
    ] = None,
    approval: Annotated[
        bool, typer.Option("--approval", help="Wait for `mahsm approve` before running the plan.")
    ] = False,
    user: Annotated[
        str | None, typer.Option(help="User id (with API keys the key's user is used).")
    ] = None,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Submit a task; prints its id and Temporal UI link (with --wait: follows it live)."""
    fields: dict[str, Any] = {"require_approval": approval}
    if model is not None:
        fields["model"] = model
    if max_parallel is not None:
        fields["max_parallel"] = max_parallel
    try:
        request = TaskRequest(
            description=description,
            user_id=user,
            plan=load_plan(plan) if plan else None,
            options=TaskOptions(**fields),
        )
    except ValidationError as error:
        problems = "; ".join(
            f"{_FLAGS.get(str(e['loc'][0]) if e['loc'] else '', 'request')}: {e['msg']}"
            for e in error.errors()
        )
        fail(f"invalid task: {problems}", ExitCode.USAGE)

    async def action(client: MahsmClient, settings: Settings) -> ExitCode:
        task_id = await client.submit(request)
        link = task_link(client, settings, task_id)
        console.print(f"Submitted [bold]{task_id}[/bold]")
        console.print(f"[dim]Temporal UI:[/dim] {escape(link)}")
        if not wait:
            console.print(f"[dim]Follow it: mahsm status {task_id}[/dim]")
            return ExitCode.OK
        return exit_code_of(await follow(client, task_id, link=None))

    raise typer.Exit(int(run_client(api, api_key, action)))


@app.command()
def status(
    task_id: Annotated[str, typer.Argument(help="Task id (task-...).")],
    as_json: JsonOption = False,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Show a task: its subtasks, usage and result. Exits 1 if it failed."""

    async def action(client: MahsmClient, settings: Settings) -> TaskState:
        return await client.get(task_id)

    state = run_client(api, api_key, action)
    if as_json:
        console.print_json(state.model_dump_json())
    else:
        settings = load_cli_settings()
        link = temporal_ui_link(settings.temporal_ui_url, settings.temporal_namespace, task_id)
        console.print(task_view(state, link=link))
        if state.status.is_terminal:
            console.print(outcome(state))
    raise typer.Exit(int(exit_code_of(state)))


@app.command("list")
def list_tasks(
    status_filter: Annotated[
        TaskStatus | None, typer.Option("--status", help="Only tasks in this status.")
    ] = None,
    user: Annotated[str | None, typer.Option(help="Only this user's tasks.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many tasks.")] = 20,
    cursor: Annotated[str | None, typer.Option(help="Cursor printed by the previous page.")] = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """List tasks, newest first."""

    async def action(client: MahsmClient, settings: Settings) -> Any:
        return await client.list(status=status_filter, user_id=user, limit=limit, cursor=cursor)

    page = run_client(api, api_key, action)
    if as_json:
        console.print_json(page.model_dump_json())
        return
    table = Table(title=f"{len(page.tasks)} task(s)", title_justify="left")
    for column in ("Task", "Status", "Created", "User", "Tokens", "Cost", "Description"):
        table.add_column(column, justify="right" if column in ("Tokens", "Cost") else "left")
    for task in page.tasks:
        table.add_row(
            task.task_id,
            styled_status(task.status),
            task.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            task.user_id or "",
            tokens(task.usage),
            cost(task.usage),
            Text(task.description[:60] + ("..." if len(task.description) > 60 else "")),
        )
    console.print(table)
    if page.next_cursor:
        console.print(f"[dim]More: mahsm list --cursor {escape(page.next_cursor)}[/dim]")


@app.command()
def cancel(
    task_id: Annotated[str, typer.Argument(help="Task id (task-...).")],
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Cancel a running task (exit 4 if it has already ended)."""

    async def action(client: MahsmClient, settings: Settings) -> None:
        await client.cancel(task_id)

    run_client(api, api_key, action)
    console.print(f"Cancellation requested for [bold]{task_id}[/bold].")


@app.command()
def approve(
    task_id: Annotated[str, typer.Argument(help="Task id (task-...).")],
    reject: Annotated[bool, typer.Option("--reject", help="Reject the plan instead.")] = False,
    comment: Annotated[str, typer.Option(help="A note kept with the decision.")] = "",
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Approve (or --reject) the plan of a task awaiting approval (exit 4 otherwise)."""

    async def action(client: MahsmClient, settings: Settings) -> TaskStatus:
        return await client.approve(task_id, approved=not reject, comment=comment)

    new_status = run_client(api, api_key, action)
    verb = "Rejected" if reject else "Approved"
    console.print(Text.assemble(f"{verb} {task_id}; it is now ", styled_status(new_status), "."))


@app.command()
def agents(
    as_json: JsonOption = False,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Show the capability pools, their live workers, and capabilities nobody serves."""

    async def action(client: MahsmClient, settings: Settings) -> Any:
        return await client.agents()

    view = run_client(api, api_key, action)
    if as_json:
        console.print_json(view.model_dump_json())
        return
    table = Table(title="Agents", title_justify="left")
    for column in ("Task queue", "Capabilities", "Workers", "Last seen"):
        table.add_column(column)
    rows = [(view.task_queue, "(orchestrators)", view.orchestrators)]
    rows += [(p.task_queue, ", ".join(p.capabilities), p.workers) for p in view.pools]
    for queue, capabilities, workers in rows:
        seen = [w.last_seen.strftime("%H:%M:%S") if w.last_seen else "" for w in workers]
        table.add_row(
            queue,
            capabilities,
            "\n".join(w.identity for w in workers) or Text("none", style="red"),
            "\n".join(seen),
        )
    console.print(table)
    if view.unserved_capabilities:
        console.print(
            "[yellow]No worker serves: "
            + ", ".join(view.unserved_capabilities)
            + "[/yellow] (subtasks needing them wait; start `mahsm worker --capabilities ...`)"
        )
