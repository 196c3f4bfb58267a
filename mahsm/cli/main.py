"""The `mahsm` console script: a registry of the command modules of `mahsm.cli`.

Each module holds a `typer.Typer` named `app`; adding a module is one `add_typer` line.
"""

from __future__ import annotations

import typer

from mahsm.cli import (
    artifacts,
    datasets,
    demo,
    experiments,
    optimize,
    pipelines,
    run,
    stack,
    tasks,
    usage,
)

app = typer.Typer(
    name="mahsm",
    help="MAHSM: durable multi-agent LLM tasks on Temporal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
app.add_typer(stack.app)
app.add_typer(tasks.app)
app.add_typer(demo.app)
app.add_typer(run.app)
app.add_typer(pipelines.app)
app.add_typer(artifacts.app)
app.add_typer(optimize.app)
app.add_typer(experiments.app)
app.add_typer(datasets.app)
app.add_typer(usage.app)


if __name__ == "__main__":
    app()
