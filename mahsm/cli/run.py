"""`mahsm run`: run a pipeline (a YAML file, or a registered name) with typed inputs.

`-i key=value` values are converted by the input's declared type (int, float, bool, list and
dict as JSON, str as is, any as JSON when it parses, else text); a bad value is an error
naming the input, before anything is sent. Exit codes are those of the task commands.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape

from mahsm.cli.common import (
    ApiKeyOption,
    ApiOption,
    ExitCode,
    JsonOption,
    exit_code_of,
    fail,
    follow,
    run_client,
    say,
    task_link,
)
from mahsm.client import MahsmClient
from mahsm.client.pipelines import resolve_source
from mahsm.contracts.pipeline import Pipeline
from mahsm.contracts.task import TaskOptions
from mahsm.errors import InvalidRequest
from mahsm.settings import Settings

app = typer.Typer()

_TRUE = {"true", "yes", "y", "on", "1"}
_FALSE = {"false", "no", "n", "off", "0"}
_JSON_TYPES: dict[str, type] = {"list": list, "dict": dict}


class InputError(ValueError):
    """An `-i` value that is malformed, unknown, or not of its declared type."""


def convert(name: str, kind: str, text: str) -> Any:
    """The value of input `name` of type `kind` from its command-line text."""
    if kind == "str":
        return text
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            raise InputError(f"input '{name}' is an int; got {text!r}") from None
    if kind == "float":
        try:
            return float(text)
        except ValueError:
            raise InputError(f"input '{name}' is a float; got {text!r}") from None
    if kind == "bool":
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise InputError(f"input '{name}' is a bool (true/false, yes/no, 1/0); got {text!r}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        if kind == "any":
            return text
        raise InputError(
            f"input '{name}' is a {kind} written as JSON, e.g. "
            + ('["a", "b"]' if kind == "list" else '{"key": "value"}')
            + f"; {error.msg} at character {error.pos}"
        ) from None
    expected = _JSON_TYPES.get(kind)
    if expected is not None and not isinstance(value, expected):
        raise InputError(f"input '{name}' is a {kind}; got JSON {type(value).__name__}")
    return value


def parse_inputs(pipeline: Pipeline, pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs as the pipeline's typed inputs; `InputError` naming the problem."""
    declared = pipeline.inputs
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise InputError(f"-i {pair!r}: write -i name=value")
        if name not in declared:
            known = ", ".join(f"{k} ({v})" for k, v in declared.items()) or "none"
            raise InputError(
                f"'{name}' is not an input of pipeline '{pipeline.name}'; inputs: {known}"
            )
        if name in values:
            raise InputError(f"input '{name}' is given twice")
        values[name] = convert(name, declared[name], text)
    missing = [f"{k} ({v})" for k, v in declared.items() if k not in values]
    if missing:
        raise InputError(
            f"missing input(s) of pipeline '{pipeline.name}': {', '.join(missing)};"
            " pass each with -i name=value"
        )
    return values


def _typed_inputs(pipeline: Pipeline, pairs: list[str] | None) -> dict[str, Any]:
    try:
        return parse_inputs(pipeline, pairs or [])
    except InputError as error:
        fail(str(error), ExitCode.USAGE)


@app.command()
def run(
    pipeline: Annotated[
        str,
        typer.Argument(
            help="A pipeline file (YAML), or a registered pipeline: name or name@version."
        ),
    ],
    inputs: Annotated[
        list[str] | None,
        typer.Option(
            "--input", "-i", help="An input as name=value (repeat it); typed as declared."
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", "-w", help="Follow the run until it ends.")
    ] = False,
    model: Annotated[
        str | None,
        typer.Option(
            help="LLM for steps that name none, as provider/model. Default: the workers'.",
            show_default=False,
        ),
    ] = None,
    approval: Annotated[
        bool, typer.Option("--approval", help="Wait for `mahsm approve` before it runs.")
    ] = False,
    as_json: JsonOption = False,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Run a pipeline; prints its task id and links (--wait: follows it; --json: JSON).

    With --wait --json it prints the final task state, including `outputs`, as JSON.
    """
    try:
        definition, ref = resolve_source(pipeline)
    except InvalidRequest as error:
        fail(error.message, ExitCode.USAGE)
    options = TaskOptions(require_approval=approval, **({"model": model} if model else {}))
    if definition is not None:  # a file: inputs are checked before anything is sent
        _typed_inputs(definition, inputs)

    async def action(client: MahsmClient, settings: Settings) -> ExitCode:
        resolved = definition or (await client.get_pipeline(str(ref))).definition
        values = _typed_inputs(resolved, inputs)
        source: Pipeline | str = definition if definition is not None else str(ref)
        task_id = await client.run_pipeline(source, values, options=options)
        submitted.append(task_id)
        link = task_link(client, settings, task_id)
        if not wait:
            if as_json:
                typer.echo(json.dumps({"task_id": task_id, "temporal_ui": link}))
            else:
                say(f"Submitted [bold]{task_id}[/bold] (pipeline {escape(resolved.name)})")
                say(f"[dim]Temporal UI:[/dim] {escape(link)}")
                say(f"[dim]Follow it: mahsm status {task_id}[/dim]")
            return ExitCode.OK
        if as_json:  # nothing but the JSON on stdout
            final = await client.wait(task_id)
            typer.echo(final.model_dump_json(indent=2))
        else:
            say(f"Submitted [bold]{task_id}[/bold] (pipeline {escape(resolved.name)})")
            say(f"[dim]Temporal UI:[/dim] {escape(link)}")
            final = await follow(client, task_id)
        return exit_code_of(final)

    submitted: list[str] = []
    try:
        code = run_client(api, api_key, action)
    except KeyboardInterrupt:  # as `submit --wait`: stop following, the run goes on
        if submitted:
            say(
                f"\nStopped following [bold]{submitted[0]}[/bold]; the run goes on. Follow it"
                f" with `mahsm status {submitted[0]}`, cancel it with"
                f" `mahsm cancel {submitted[0]}`."
            )
        code = ExitCode.INTERRUPTED
    raise typer.Exit(int(code))
