"""Shared pieces of the task commands and the demo: exit codes, options, the API client."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Coroutine
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import httpx
import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from mahsm.cli.live import LiveTask, outcome
from mahsm.client import (
    AuthError,
    Conflict,
    InvalidRequest,
    MahsmClient,
    MahsmError,
    ServiceUnavailable,
    TaskNotFound,
)
from mahsm.contracts.task import Plan, TaskState, TaskStatus
from mahsm.settings import Settings, SettingsError, load_settings
from mahsm.tasks import temporal_ui_link

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
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it


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


def say(markup: str) -> None:
    """Print one line that holds ids, URLs or cursors: never wrapped, so it can be copied."""
    console.print(markup, soft_wrap=True)


def fail(message: str, code: ExitCode) -> NoReturn:
    """Print `message` to stderr (never wrapped) and exit with `code`."""
    errors.print(f"[red]{escape(message)}[/red]", soft_wrap=True)
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
        message = error.message
        if isinstance(error, TaskNotFound):  # the API names its endpoint; we name our command
            message = re.sub(r"GET /tasks\b(?!/)", "`mahsm list`", message)
        fail(f"{message} [{error.code}]", code)


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


async def follow(client: MahsmClient, task_id: str, *, poll_s: float = 0.5) -> TaskState:
    """Show the live view until the task ends, then its result; returns the final state."""
    with LiveTask(console) as live:
        text = asyncio.create_task(_show_text(client, task_id, live))
        try:
            final = await client.wait(task_id, on_progress=live.update, poll_s=poll_s)
        finally:
            text.cancel()
            await asyncio.gather(text, return_exceptions=True)
    console.print(outcome(final))
    return final


async def _show_text(client: MahsmClient, task_id: str, live: LiveTask) -> None:
    """Feed the live text of running calls to the view; a preview, so failures are ignored."""
    try:
        async for chunk in client.live_tokens(task_id):
            live.text(chunk)
    except (MahsmError, httpx.HTTPError, ValueError):
        return  # the table still follows the task by polling


# Fields of TaskRequest/TaskOptions named the way `submit` spells them.
_FLAGS = {
    "description": "DESCRIPTION",
    "model": "--model (provider/model, e.g. openai/gpt-4o-mini)",
    "max_parallel": "--max-parallel",
    "user_id": "--user",
}
