from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

from mahsm.activities.tools import (
    ToolArgumentsError,
    ToolContext,
    ToolRegistry,
    default_registry,
    specs_for,
    tool,
)
from mahsm.activities.tools.docstrings import parse_docstring
from mahsm.contracts.task import Capability

DATA = Capability.DATA_ANALYSIS
FILES = Capability.FILE_PROCESSING


class Point(BaseModel):
    x: float
    y: float


def search(
    context: ToolContext,
    query: str,
    limit: Annotated[int, Field(ge=1, le=50)] = 10,
    mode: Literal["fast", "exact"] = "fast",
    tags: list[str] | None = None,
    origin: Point | None = None,
) -> str:
    """Search the notes of the task.

    Matches are ranked by relevance.

    Args:
        context: Not shown to the model.
        query: Words to look for; several words
            must all match.
        limit: Most results to return.
        mode (str): How to match.
        tags: Only notes with one of these tags.
        origin: Rank by distance to this point.

    Returns:
        The matching notes.
    """
    return query


def test_schema_comes_from_signature_and_docstring() -> None:
    registry = ToolRegistry()
    item = registry.register(search, capabilities=[DATA])
    spec = item.spec
    assert item.takes_context and not item.side_effects
    assert spec.name == "search"
    assert spec.description == "Search the notes of the task.\n\nMatches are ranked by relevance."
    params = spec.parameters
    assert params["type"] == "object" and params["additionalProperties"] is False
    assert params["required"] == ["query"]
    props = params["properties"]
    assert list(props) == ["query", "limit", "mode", "tags", "origin"]  # no context
    assert props["query"] == {
        "type": "string",
        "description": "Words to look for; several words must all match.",
    }
    assert props["limit"]["type"] == "integer" and props["limit"]["default"] == 10
    assert (props["limit"]["minimum"], props["limit"]["maximum"]) == (1, 50)
    assert props["limit"]["description"] == "Most results to return."
    assert props["mode"]["enum"] == ["fast", "exact"]
    assert props["mode"]["description"] == "How to match."
    assert props["tags"]["anyOf"][0] == {"items": {"type": "string"}, "type": "array"}
    assert "Point" in params["$defs"] and props["origin"]["description"]
    assert "title" not in params and all("title" not in p for p in props.values())


def test_docstring_parser_reads_google_sections() -> None:
    doc = parse_docstring(search.__doc__)
    assert doc.params["query"] == "Words to look for; several words must all match."
    assert doc.params["mode"] == "How to match."
    assert "Returns" not in doc.description and "The matching notes" not in doc.description
    assert parse_docstring(None).description == ""


async def test_arguments_are_validated_before_the_function_runs() -> None:
    calls: list[int] = []

    def add(a: int, b: int = 1) -> int:
        """Add two integers.

        Args:
            a: First.
            b: Second.
        """
        calls.append(a)
        return a + b

    item = ToolRegistry().register(add, capabilities=[DATA])
    assert item.parse_arguments('{"a": 2}') == {"a": 2, "b": 1}
    assert item.parse_arguments({"a": "3", "b": 4}) == {"a": 3, "b": 4}  # lax: "3" -> 3
    cases = {
        "{}": "- a: Field required",
        '{"a": "two"}': "- a: Input should be a valid integer",
        '{"a": 1, "c": 2}': "- c: Extra inputs are not permitted",
        '{"a": 1': "not valid JSON",
        "[1, 2]": "expected a JSON object",
    }
    for arguments, expected in cases.items():
        with pytest.raises(ToolArgumentsError) as caught:
            item.parse_arguments(arguments)
        assert expected in str(caught.value) and "tool 'add'" in str(caught.value)
    assert calls == []
    assert await item.call(None, item.parse_arguments('{"a": 2, "b": 5}')) == "7"  # JSON text
    assert calls == [2]


async def test_sync_tools_run_in_a_thread_and_async_tools_on_the_loop() -> None:
    threads: dict[str, int] = {}

    def blocking() -> str:
        """Record the thread."""
        threads["sync"] = threading.get_ident()
        return "ok"

    async def nonblocking() -> str:
        """Record the thread."""
        threads["async"] = threading.get_ident()
        return "ok"

    registry = ToolRegistry()
    for func in (blocking, nonblocking):
        item = registry.register(func, capabilities=None)
        assert await item.call(None, {}) == "ok"
    assert threads["async"] == threading.get_ident()
    assert threads["sync"] != threading.get_ident()


def test_specs_for_filters_by_capability_in_a_deterministic_order() -> None:
    def make(name: str) -> object:
        def func() -> str:
            return name

        func.__doc__ = f"Tool {name}."
        func.__name__ = name
        func.__qualname__ = name
        return func

    tools = [
        (make("zeta"), [DATA]),
        (make("alpha"), [FILES, DATA]),
        (make("every"), None),
        (make("web"), [Capability.WEB_SCRAPING]),
    ]
    registry = ToolRegistry()
    for func, capabilities in tools:
        registry.register(func, capabilities=capabilities)  # type: ignore[arg-type]
    names = [spec.name for spec in registry.specs_for([DATA])]
    assert names == ["alpha", "every", "zeta"]
    assert [s.name for s in registry.specs_for(["file_processing"])] == ["alpha", "every"]
    assert [s.name for s in registry.specs_for([])] == ["every"]  # universal tools only
    backwards = ToolRegistry()
    for func, capabilities in reversed(tools):
        backwards.register(func, capabilities=capabilities)  # type: ignore[arg-type]
    assert backwards.specs_for([FILES, DATA]) == registry.specs_for([DATA, FILES])
    registry.specs_for([DATA])[0].parameters["mutated"] = True
    assert "mutated" not in registry.specs_for([DATA])[0].parameters  # callers get copies


def test_bad_tools_are_refused_at_registration() -> None:
    registry = ToolRegistry()

    def untyped(x) -> str:  # type: ignore[no-untyped-def]
        """Untyped."""
        return str(x)

    def variadic(*items: int) -> str:
        """Variadic."""
        return ""

    def undocumented(x: int) -> str:
        return ""

    def documented(x: int) -> str:
        """Documented."""
        return ""

    bad: list[tuple[Callable[..., Any], str]] = [
        (untyped, "needs a type hint"),
        (variadic, "must be by keyword"),
        (undocumented, "needs a docstring"),
    ]
    for func, message in bad:
        with pytest.raises(TypeError, match=message):
            registry.register(func, capabilities=None)
    with pytest.raises(TypeError, match="must match"):
        registry.register(documented, capabilities=None, name="has space")
    registry.register(documented, capabilities=None)
    registry.register(documented, capabilities=None)  # the same function again: fine

    def other() -> str:
        """Other."""
        return ""

    with pytest.raises(ValueError, match="taken"):
        registry.register(other, capabilities=None, name="documented")
    assert registry.register(other, capabilities=None, name="renamed").name == "renamed"


def test_default_registry_holds_the_builtins_with_their_capabilities() -> None:
    registry = default_registry()
    expected = {
        "calculator": None,
        "get_shared_state": None,
        "set_shared_state": None,
        "read_file": {FILES, Capability.CODE_GENERATION, DATA},
        "write_file": {FILES, Capability.CODE_GENERATION, DATA},
        "list_files": {FILES, Capability.CODE_GENERATION, DATA},
        "sql_query": {Capability.DATABASE_OPERATIONS, DATA},
    }
    for name, capabilities in expected.items():
        item = registry.get(name)
        assert item is not None, name
        assert item.universal if capabilities is None else item.capabilities == capabilities
    side_effects = {item.name for item in registry if item.side_effects}
    assert {"write_file", "set_shared_state"} <= side_effects
    assert not {"read_file", "sql_query", "calculator"} & side_effects
    web = [s.name for s in specs_for([Capability.WEB_SCRAPING])]
    assert web == ["calculator", "get_shared_state", "set_shared_state"]


def test_users_register_their_own_tools_on_the_default_registry() -> None:
    @tool(capabilities=[Capability.API_INTEGRATION], name="user_echo_tool")
    def echo(text: str) -> str:
        """Echo the text.

        Args:
            text: What to echo.
        """
        return text

    try:
        assert echo("hi") == "hi"  # the decorator returns the function unchanged
        assert "user_echo_tool" in default_registry()
        names = [s.name for s in specs_for([Capability.API_INTEGRATION])]
        assert "user_echo_tool" in names
        assert "user_echo_tool" not in [s.name for s in specs_for([DATA])]
    finally:
        default_registry().unregister("user_echo_tool")
    assert "user_echo_tool" not in default_registry()
