"""Task commands: `submit`, `status`, `list`, `cancel`, `approve`, `agents`.

They talk to the REST API: `--api`, else `MAHSM_API_URL`, else `http://{api_host}:{api_port}`
from the settings. Exit codes (docs/cli.md): 0 ok / task completed, 1 task failed, timed out
or cancelled, 2 usage or configuration error, 3 task not found, 4 conflict, 5 service
unreachable, 130 interrupted (Ctrl-C while following a task, which goes on).

Models: the workers choose the model of a task that names none (their MAHSM_DEFAULT_MODEL);
MAHSM_DEFAULT_MODEL in the CLI's own shell changes nothing.
"""

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from mahsm.cli.common import (
    _FLAGS,
    ApiKeyOption,
    ApiOption,
    ExitCode,
    JsonOption,
    console,
    exit_code_of,
    fail,
    follow,
    load_cli_settings,
    load_plan,
    run_client,
    say,
    task_link,
)
from mahsm.cli.estimate_view import print_estimate
from mahsm.cli.live import outcome, print_task_list, styled_status, task_view
from mahsm.client import (
    MahsmClient,
)
from mahsm.contracts.estimate import EstimateRequest
from mahsm.contracts.task import TaskOptions, TaskRequest, TaskState, TaskStatus
from mahsm.settings import Settings
from mahsm.tasks import temporal_ui_link

app = typer.Typer()


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
        str | None,
        typer.Option(
            help="LLM as provider/model, e.g. openai/gpt-4o-mini. Default: the workers'"
            " MAHSM_DEFAULT_MODEL (set where `mahsm up` or the workers run, not in this shell).",
            show_default=False,
        ),
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
    estimate: Annotated[
        bool,
        typer.Option(
            "--estimate",
            help="Print the plan's expected calls, tokens, cost and duration; run nothing"
            " (without --plan the planner is asked once).",
        ),
    ] = False,
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

    if estimate:
        raise typer.Exit(int(run_client(api, api_key, _estimate_action(request))))
    submitted: list[str] = []

    async def action(client: MahsmClient, settings: Settings) -> ExitCode:
        task_id = await client.submit(request)
        submitted.append(task_id)
        link = task_link(client, settings, task_id)
        say(f"Submitted [bold]{task_id}[/bold]")
        say(f"[dim]Temporal UI:[/dim] {escape(link)}")
        _show_model(model or await _resolved_model(client, task_id))
        if not wait:
            say(f"[dim]Follow it: mahsm status {task_id}[/dim]")
            return ExitCode.OK
        return exit_code_of(await follow(client, task_id))

    try:
        code = run_client(api, api_key, action)
    except KeyboardInterrupt:
        if not submitted:
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        task_id = submitted[0]
        say(
            f"\nStopped following [bold]{task_id}[/bold]; the task goes on. Follow it with"
            f" `mahsm status {task_id}`, cancel it with `mahsm cancel {task_id}`."
        )
        code = ExitCode.INTERRUPTED
    raise typer.Exit(int(code))


def _estimate_action(
    request: TaskRequest,
) -> Callable[[MahsmClient, Settings], Awaitable[ExitCode]]:
    async def action(client: MahsmClient, _: Settings) -> ExitCode:
        report = await client.estimate(
            EstimateRequest(
                description=request.description, plan=request.plan, options=request.options
            )
        )
        print_estimate(report)
        return ExitCode.OK

    return action


async def _resolved_model(client: MahsmClient, task_id: str) -> str:
    """The model the workers chose for the task, as the API reports it (empty if not, after 1 s)."""
    for _ in range(10):
        state = await client.get(task_id)
        if state.model or state.status.is_terminal:
            return state.model
        await asyncio.sleep(0.1)
    return ""


def _show_model(model: str) -> None:
    shell_default = os.environ.get("MAHSM_DEFAULT_MODEL")
    if model:
        say(f"[dim]Model:[/dim] {escape(model)}")
    else:
        say("[dim]Model:[/dim] the workers' default (MAHSM_DEFAULT_MODEL where they run)")
    if shell_default and shell_default != model:
        say(
            f"[yellow]MAHSM_DEFAULT_MODEL={escape(shell_default)} in this shell is not used:"
            " the workers' own setting decides. Pass --model, or set it where `mahsm up`"
            " (or the workers) run.[/yellow]"
        )


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
        # Not chosen yet (a pending task): null, not an empty model id.
        console.print_json(
            json.dumps({**state.model_dump(mode="json"), "model": state.model or None})
        )
    else:
        settings = load_cli_settings()
        link = temporal_ui_link(settings.temporal_ui_url, settings.temporal_namespace, task_id)
        console.print(task_view(state))
        say(f"[dim]Temporal UI:[/dim] {escape(link)}")
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
    print_task_list(console, page.tasks)
    if page.next_cursor:
        say(f"[dim]More: mahsm list --cursor {escape(page.next_cursor)}[/dim]")


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
    say(f"Cancellation requested for [bold]{task_id}[/bold].")


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
    console.print(
        Text.assemble(f"{verb} {task_id}; it is now ", styled_status(new_status), "."),
        soft_wrap=True,
    )


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
    for column in ("Task queue", "Capabilities", "Profile", "Workers", "Last seen"):
        table.add_column(column)
    rows = [(view.task_queue, "(orchestrators)", "", view.orchestrators)]
    rows += [
        (p.task_queue, ", ".join(p.capabilities), (p.profile or {}).get("name", ""), p.workers)
        for p in view.pools
    ]
    for queue, capabilities, profile, workers in rows:
        seen = [w.last_seen.strftime("%H:%M:%S") if w.last_seen else "" for w in workers]
        table.add_row(
            queue,
            capabilities,
            profile,
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
