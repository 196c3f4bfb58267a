"""The one registry of agent tools: typed Python functions offered to the model by capability.

A tool is a plain function (async or sync) with type hints and a Google docstring; see
`mahsm.activities.tools.definition` for how its schema and validator are derived. A first
parameter annotated `ToolContext` receives the per-call context and is not in the schema.

This module is imported by workflows (`specs_for`), so nothing here does I/O, reads the
environment or the clock at import time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from mahsm.activities.tools.definition import (
    EVERY_CAPABILITY,
    RegisteredTool,
    ToolArgumentsError,
    ToolContext,
    ToolError,
    as_capabilities,
    build_tool,
)
from mahsm.contracts.llm import ToolSpec
from mahsm.contracts.task import Capability

__all__ = [
    "EVERY_CAPABILITY",
    "RegisteredTool",
    "ToolArgumentsError",
    "ToolContext",
    "ToolError",
    "ToolRegistry",
    "build_tool",
    "default_registry",
    "specs_for",
    "tool",
]

F = TypeVar("F", bound=Callable[..., Any])


class ToolRegistry:
    """Tools by name. Register with `registry.tool(...)` or `registry.register(...)`."""

    def __init__(self, tools: Iterable[RegisteredTool] = ()) -> None:
        self._tools: dict[str, RegisteredTool] = {}
        self._unavailable: dict[str, str] = {}
        for item in tools:
            self.add(item)

    def add(self, item: RegisteredTool) -> RegisteredTool:
        """Add a built tool. A different function under a taken name is an error.

        Args:
            item: The tool, e.g. from `build_tool` or another registry's `get`.

        Returns:
            The tool.

        Raises:
            ValueError: Another function is already registered under that name.
        """
        existing = self._tools.get(item.name)
        if existing is not None and _origin(existing.func) != _origin(item.func):
            raise ValueError(
                f"tool name '{item.name}' is taken by {_origin(existing.func)}; pass name=..."
            )
        self._tools[item.name] = item
        return item

    def register(
        self,
        func: Callable[..., Any],
        *,
        capabilities: Iterable[Capability | str] | None,
        side_effects: bool = False,
        name: str | None = None,
    ) -> RegisteredTool:
        """Register `func` as a tool (see `build_tool` for the arguments)."""
        return self.add(
            build_tool(func, capabilities=capabilities, side_effects=side_effects, name=name)
        )

    def tool(
        self,
        *,
        capabilities: Iterable[Capability | str] | None,
        side_effects: bool = False,
        name: str | None = None,
    ) -> Callable[[F], F]:
        """Decorator registering a function on this registry; the function is unchanged."""

        def decorate(func: F) -> F:
            self.register(func, capabilities=capabilities, side_effects=side_effects, name=name)
            return func

        return decorate

    def unregister(self, name: str) -> None:
        """Remove the tool called `name`; a missing name is a `KeyError`."""
        del self._tools[name]

    def get(self, name: str) -> RegisteredTool | None:
        """The tool called `name`, or None."""
        return self._tools.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[RegisteredTool]:
        return iter(sorted(self._tools.values(), key=lambda item: item.name))

    def __len__(self) -> int:
        return len(self._tools)

    def names(self) -> list[str]:
        """Every tool name, sorted."""
        return sorted(self._tools)

    def tools_for(self, capabilities: Iterable[Capability | str]) -> list[RegisteredTool]:
        """The tools a subtask with `capabilities` may call, sorted by name."""
        wanted = as_capabilities(capabilities)
        return [item for item in self if item.allowed_for(wanted)]

    def specs_for(self, capabilities: Iterable[Capability | str]) -> list[ToolSpec]:
        """The schemas of `tools_for(capabilities)`, sorted by name; pure and deterministic."""
        return [item.spec.model_copy(deep=True) for item in self.tools_for(capabilities)]

    def mark_unavailable(self, prefix: str, reason: str) -> None:
        """Tools named `prefix...` are unavailable for `reason` (e.g. their MCP server is down).

        A call to such a tool that the registry does not hold gets the reason as its error,
        instead of "unknown tool".
        """
        self._unavailable[prefix] = reason

    def unavailable_reason(self, name: str) -> str | None:
        """Why the tool `name` is unavailable, when a `mark_unavailable` prefix covers it."""
        for prefix, reason in self._unavailable.items():
            if name.startswith(prefix):
                return reason
        return None

    def restricted(self, names: Iterable[str], capabilities: Iterable[Capability]) -> ToolRegistry:
        """A registry of the tools `names` only, each allowed for `capabilities` (a profile's).

        Unavailability marks are kept, so a named tool of an MCP server that is down still
        gets its server's reason rather than "unknown tool".
        """
        allowed = frozenset(capabilities)
        registry = ToolRegistry(
            dataclasses.replace(item, capabilities=allowed)
            for item in (self._tools.get(name) for name in names)
            if item is not None
        )
        registry._unavailable = dict(self._unavailable)
        return registry

    def copy(self) -> ToolRegistry:
        """A new registry holding the same tools (e.g. the built-ins plus test tools)."""
        registry = ToolRegistry(self._tools.values())
        registry._unavailable = dict(self._unavailable)
        return registry


def _origin(func: Callable[..., Any]) -> str:
    return f"{func.__module__}.{func.__qualname__}"


_DEFAULT = ToolRegistry()


def default_registry() -> ToolRegistry:
    """The process-wide registry: the built-in tools plus those users register on it.

    The built-ins are registered when the `mahsm.activities.tools` package is imported, which
    happens before this module can be imported.
    """
    return _DEFAULT


def tool(
    *,
    capabilities: Iterable[Capability | str] | None,
    side_effects: bool = False,
    name: str | None = None,
) -> Callable[[F], F]:
    """Decorator registering a typed function as a tool on the default registry.

    Args:
        capabilities: The capabilities whose subtasks may call it; None means every one.
        side_effects: True when it changes the world; its result is then recorded under the
            call's idempotency key and a retried activity returns the record instead.
        name: The name offered to the model; defaults to the function's name.

    Returns:
        A decorator returning the function unchanged.
    """
    return _DEFAULT.tool(capabilities=capabilities, side_effects=side_effects, name=name)


def specs_for(
    capabilities: Iterable[Capability | str], *, registry: ToolRegistry | None = None
) -> list[ToolSpec]:
    """The tool schemas to offer a subtask with `capabilities`, sorted by name.

    Pure and deterministic: safe to call from workflow code.

    Args:
        capabilities: The subtask's required capabilities.
        registry: The registry to read; the default registry when None.

    Returns:
        One `ToolSpec` per allowed tool.
    """
    return (registry or _DEFAULT).specs_for(capabilities)
