"""How a tool is defined: its context, its errors, and its schema derived from the function.

`build_tool` turns a typed function with a Google docstring into a `RegisteredTool`: an
OpenAI function schema from the signature and docstring, a pydantic model validating the
model's arguments, and a `call` that runs the function (sync functions in a thread).
Nothing here does I/O at import time: workflows import it (through `specs_for`).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast, get_type_hints

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic_core import to_json

from mahsm.activities.blobs import BlobStore
from mahsm.activities.tools.docstrings import parse_docstring
from mahsm.contracts.llm import ToolSpec
from mahsm.contracts.task import Capability
from mahsm.settings import Settings

TOOL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
EVERY_CAPABILITY: frozenset[Capability] = frozenset(Capability)


class ToolError(Exception):
    """An expected failure of a tool; its message is shown to the model as is."""


class ToolArgumentsError(ToolError):
    """The model's arguments are not valid JSON or do not match the tool's schema."""


@dataclass(frozen=True)
class ToolContext:
    """What a tool may use besides its arguments. Built by the `tool_execute` activity.

    Attributes:
        task_id: The task the call belongs to.
        subtask_id: The subtask whose agent made the call.
        workspace: The task's private directory (`settings.workspace_root() / task_id`);
            it may not exist yet.
        pool: The worker's pool on the MAHSM database, which holds every user's tasks: a
            tool must scope its queries to `task_id` and never run SQL the model wrote on it.
        blobs: The claim-check blob store.
        idempotency_key: Stable across retries of the same activity; unique per call.
        settings: The worker's settings.
        sql_pool: The pool on the database agents may query (`MAHSM_SQL_TOOL_DATABASE_URL`),
            or None when the worker has none; `sql_query` runs there and nowhere else.
    """

    task_id: str
    subtask_id: str
    workspace: Path
    pool: asyncpg.Pool
    blobs: BlobStore
    idempotency_key: str
    settings: Settings
    sql_pool: asyncpg.Pool | None = None


@dataclass(frozen=True)
class RegisteredTool:
    """A tool as the registry holds it.

    Attributes:
        name: The name the model calls it by.
        spec: Its OpenAI function schema.
        capabilities: The capabilities it serves; `EVERY_CAPABILITY` means every subtask.
        side_effects: True when running it changes the world; the activity then records its
            result so that a retried activity does not run it again.
        func: The Python function.
        arguments_model: The pydantic model validating the arguments.
        takes_context: True when the first parameter is a `ToolContext`.
    """

    name: str
    spec: ToolSpec
    capabilities: frozenset[Capability]
    side_effects: bool
    func: Callable[..., Any]
    arguments_model: type[BaseModel]
    takes_context: bool

    @property
    def universal(self) -> bool:
        """True when every subtask may use the tool."""
        return self.capabilities >= EVERY_CAPABILITY

    def allowed_for(self, capabilities: Iterable[Capability | str]) -> bool:
        """True when a subtask with `capabilities` may call this tool."""
        return self.universal or bool(self.capabilities & as_capabilities(capabilities))

    def parse_arguments(self, arguments: str | dict[str, Any]) -> dict[str, Any]:
        """Validate the model's arguments (JSON text or a dict) into keyword arguments.

        Args:
            arguments: The JSON object the model produced, as text or already decoded.

        Returns:
            The validated keyword arguments of the function (context excluded).

        Raises:
            ToolArgumentsError: The JSON is malformed or does not match the schema; the
                message lists every problem by parameter name.
        """
        try:
            if isinstance(arguments, str):
                model = self.arguments_model.model_validate_json(arguments.strip() or "{}")
            else:
                model = self.arguments_model.model_validate(arguments)
        except ValidationError as error:
            raise ToolArgumentsError(_describe_validation(self.name, error)) from None
        fields = type(model).model_fields
        return {info.alias or key: getattr(model, key) for key, info in fields.items()}

    async def call(self, context: ToolContext | None, arguments: dict[str, Any]) -> str:
        """Run the function with validated `arguments`; sync functions run in a thread.

        Args:
            context: The call's context; required when the tool takes one.
            arguments: Keyword arguments from `parse_arguments`.

        Returns:
            The tool's result as text (non-text results are serialized as JSON).
        """
        args: tuple[Any, ...] = ()
        if self.takes_context:
            if context is None:
                raise ToolError(f"tool '{self.name}' needs a ToolContext")
            args = (context,)
        if inspect.iscoroutinefunction(self.func):
            result = await cast(Callable[..., Awaitable[Any]], self.func)(*args, **arguments)
        else:
            result = await asyncio.to_thread(functools.partial(self.func, *args, **arguments))
        if isinstance(result, str):
            return result
        return to_json(result, fallback=str).decode("utf-8")


def as_capabilities(values: Iterable[Capability | str]) -> frozenset[Capability]:
    """`values` as a set of `Capability` (strings are converted; unknown ones are an error)."""
    return frozenset(Capability(value) for value in values)


def _describe_validation(name: str, error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "arguments"
        if item["type"] == "json_invalid":
            return f"Invalid arguments for tool '{name}': not valid JSON ({item['msg']})."
        if item["type"] == "model_type":
            return f"Invalid arguments for tool '{name}': expected a JSON object."
        problems.append(f"- {where}: {item['msg']}")
    return f"Invalid arguments for tool '{name}':\n" + "\n".join(problems)


def _strip_titles(schema: dict[str, Any]) -> dict[str, Any]:
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    return schema


def build_tool(
    func: Callable[..., Any],
    *,
    capabilities: Iterable[Capability | str] | None,
    side_effects: bool = False,
    name: str | None = None,
) -> RegisteredTool:
    """Describe `func` as a tool: its schema, its validator and its capabilities.

    Args:
        func: A typed function; every parameter (except a leading `ToolContext`) needs a type
            hint and must be passable by keyword.
        capabilities: The capabilities it serves; None means every capability.
        side_effects: Whether running it changes the world (see `RegisteredTool`).
        name: The name offered to the model; defaults to the function's name.

    Returns:
        The tool, ready to be added to a registry.

    Raises:
        TypeError: The function cannot be a tool (untyped or positional-only parameters,
            `*args`, a bad name, no description).
    """
    tool_name = name or func.__name__
    if not TOOL_NAME_PATTERN.match(tool_name):
        raise TypeError(f"tool name '{tool_name}' must match {TOOL_NAME_PATTERN.pattern}")
    doc = parse_docstring(inspect.getdoc(func))
    if not doc.description:
        raise TypeError(f"tool '{tool_name}' needs a docstring: its summary is the description")
    hints = get_type_hints(func, include_extras=True)
    params = list(inspect.signature(func).parameters.values())
    takes_context = bool(params) and hints.get(params[0].name) is ToolContext
    if takes_context:
        params = params[1:]
    fields: dict[str, Any] = {}
    for index, param in enumerate(params):
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            raise TypeError(f"tool '{tool_name}': parameter '{param.name}' must be by keyword")
        if param.name not in hints:
            raise TypeError(f"tool '{tool_name}': parameter '{param.name}' needs a type hint")
        default = ... if param.default is param.empty else param.default
        info = Field(default, alias=param.name, description=doc.params.get(param.name))
        fields[f"p{index}"] = (hints[param.name], info)
    model = cast(
        type[BaseModel],
        create_model(f"{tool_name}_arguments", __config__=ConfigDict(extra="forbid"), **fields),
    )
    spec = ToolSpec(
        name=tool_name,
        description=doc.description,
        parameters=_strip_titles(model.model_json_schema(by_alias=True)),
    )
    return RegisteredTool(
        name=tool_name,
        spec=spec,
        capabilities=EVERY_CAPABILITY if capabilities is None else as_capabilities(capabilities),
        side_effects=side_effects,
        func=func,
        arguments_model=model,
        takes_context=takes_context,
    )
