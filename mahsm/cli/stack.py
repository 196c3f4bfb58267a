"""Commands that run MAHSM itself: `up` (the whole embedded stack), `worker`, `api`, `migrate`."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from mahsm.devstack.lock import StackAlreadyRunning
from mahsm.devstack.stack import DevStack, StackError, StackInfo
from mahsm.logging import configure_logging, redact_text
from mahsm.settings import Settings, SettingsError, load_settings

app = typer.Typer()
console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)

DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="State directory [env: MAHSM_DATA_DIR].")
]


def _settings(**overrides: object) -> Settings:
    """Settings with the command-line overrides; a bad configuration exits with code 2."""
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as error:
        errors.print(f"[red]{escape(str(error))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None


def _fail(message: str, code: int = 1) -> NoReturn:
    errors.print(f"[red]{escape(message)}[/red]", soft_wrap=True)
    raise typer.Exit(code)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _still_stopping(_signum: int, _frame: FrameType | None) -> None:
    errors.print("Still stopping; please wait.")


def _print_info(info: StackInfo) -> None:
    rows = [
        ("Dashboard", info.dashboard_url),
        ("API", info.api_url),
        ("API docs", info.docs_url),
        ("Temporal UI", info.temporal_ui_url or "(external Temporal)"),
        ("Temporal", info.temporal_address),
        ("Database", info.database_url),
        ("Data dir", str(info.data_dir)),
        ("Logs", str(info.logs_dir)),
        (
            ("MLflow UI", f"{info.mlflow_ui_url}  (experiments log here)")
            if info.mlflow_ui_url
            else (
                "MLflow",
                f"{info.mlflow_tracking_uri}  (experiments log here: MLFLOW_TRACKING_URI)",
            )
        ),
        (
            "Default model",
            f"{info.default_model}  (the worker's MAHSM_DEFAULT_MODEL, from where `mahsm up`"
            " runs; tasks without --model use it)",
        ),
    ]
    console.print("[bold green]MAHSM is up.[/bold green]")
    for label, value in rows:
        # One line each, never wrapped: URLs and paths stay whole for copying.
        console.print(f"  {label:<14}{escape(value)}", soft_wrap=True)
    console.print("Press Ctrl-C to stop.")


@app.command()
def up(
    data_dir: DataDirOption = None,
    api_port: Annotated[
        int | None, typer.Option(help="API port [env: MAHSM_API_PORT].", show_default=False)
    ] = None,
    temporal_port: Annotated[
        int | None,
        typer.Option(help="Embedded Temporal port [env: MAHSM_TEMPORAL_PORT].", show_default=False),
    ] = None,
    temporal_ui_port: Annotated[
        int | None,
        typer.Option(help="Temporal UI port [env: MAHSM_TEMPORAL_UI_PORT].", show_default=False),
    ] = None,
    postgres_port: Annotated[
        int | None,
        typer.Option(help="Embedded Postgres port [env: MAHSM_POSTGRES_PORT].", show_default=False),
    ] = None,
) -> None:
    """Start Temporal, Postgres, a worker and the API; Ctrl-C stops them all."""
    settings = _settings(
        data_dir=data_dir,
        api_port=api_port,
        temporal_port=temporal_port,
        temporal_ui_port=temporal_ui_port,
        postgres_port=postgres_port,
    )
    # The steps printed below say what happens; library logs only when asked for.
    level = settings.log_level if "log_level" in settings.model_fields_set else "WARNING"
    configure_logging(level=level, fmt=settings.log_format)
    stack = DevStack(
        settings, on_step=lambda line: console.print(f"[dim]{escape(line)}[/dim]", soft_wrap=True)
    )
    # SIGINT too: a shell that starts us in the background may have set it to "ignore".
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    code = 0
    try:
        _print_info(stack.start())
        stack.wait()
    except KeyboardInterrupt:
        console.print("Stopping MAHSM ...")
    except StackAlreadyRunning as error:
        _fail(str(error))
    except StackError as error:
        errors.print(f"[red]{escape(str(error))}[/red]", soft_wrap=True)
        code = 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _still_stopping)
        stack.stop()
    if code == 0:
        console.print("MAHSM stopped.")
    raise typer.Exit(code)


def _exec_module(module: str, env: dict[str, str]) -> NoReturn:
    """Replace this process with `python -m <module>`, so signals reach the role directly."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", module], {**os.environ, **env})


@app.command()
def worker(
    capabilities: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated capabilities this worker serves [env: MAHSM_WORKER_CAPABILITIES]."
        ),
    ] = None,
) -> None:
    """Run one worker in the foreground (what deployments run)."""
    _settings(worker_capabilities=capabilities)
    env = {"MAHSM_WORKER_CAPABILITIES": capabilities} if capabilities else {}
    _exec_module("mahsm.workers", env)


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Bind address [env: MAHSM_API_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [env: MAHSM_API_PORT].")] = None,
) -> None:
    """Run the HTTP API in the foreground (what deployments run)."""
    _settings(api_host=host, api_port=port)
    env = {}
    if host is not None:
        env["MAHSM_API_HOST"] = host
    if port is not None:
        env["MAHSM_API_PORT"] = str(port)
    _exec_module("mahsm.api", env)


@app.command()
def migrate() -> None:
    """Apply the database migrations to MAHSM_DATABASE_URL."""
    from mahsm.db.migrate import migrate as apply

    settings = _settings()
    if settings.database_url is None:
        _fail(
            "MAHSM_DATABASE_URL is not set. Set it to a postgresql:// URL; `mahsm up` migrates"
            " its embedded database by itself.",
            code=2,
        )
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    url = settings.database_url.get_secret_value()
    try:
        applied = asyncio.run(apply(url))
    except Exception as error:  # connection refused, authentication, SQL
        _fail(f"migrations failed on {redact_text(url)}: {redact_text(str(error))}")
    console.print(f"Applied: {', '.join(applied)}" if applied else "Schema is up to date.")
