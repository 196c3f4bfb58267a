"""MCP tools against real MCP servers (the `mcp` SDK's, as subprocesses): stdio and HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import pytest_asyncio
import structlog

from mahsm.activities.tools import ToolActivities, default_registry
from mahsm.activities.tools.mcp_tools import (
    McpConfigError,
    McpServerConfig,
    McpServerSession,
    McpToolset,
    load_mcp_config,
    load_mcp_tools,
)
from mahsm.activities.tools.mcp_tools.worker import start_mcp_tools
from mahsm.contracts.llm import ToolCall
from mahsm.contracts.tools import ToolInvocation
from mahsm.settings import Settings
from tests.activities.tools.mcp_servers.running import DEMO_SERVER, free_port, http_demo_server

TOKEN_VAR = "MAHSM_TEST_MCP_BEARER"  # not a name redaction knows: the config registers it
CONNECT_S = 90.0  # the SDK's import alone takes seconds on a loaded machine
MakeActivities = Callable[..., ToolActivities]


def stdio_config(name: str = "demo", **extra: Any) -> McpServerConfig:
    return McpServerConfig(
        name=name, command=sys.executable, args=[str(DEMO_SERVER), "stdio"], **extra
    )


def http_config(port: int, name: str = "web") -> McpServerConfig:
    return McpServerConfig(
        name=name,
        url=f"http://127.0.0.1:{port}/mcp",
        headers={"Authorization": f"Bearer ${{{TOKEN_VAR}}}"},
    )


@pytest.fixture(scope="module")
def token() -> Iterator[str]:
    value = f"mcp-secret-{uuid.uuid4().hex}"
    os.environ[TOKEN_VAR] = value
    yield value
    del os.environ[TOKEN_VAR]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def toolset(token: str) -> AsyncIterator[McpToolset]:
    """The demo server over stdio (`demo`) and over streamable HTTP (`web`)."""
    port = free_port()
    async with http_demo_server(port, token):
        loaded = await load_mcp_tools(
            [stdio_config(), http_config(port)], connect_timeout_s=CONNECT_S
        )
        async with loaded:
            yield loaded


def invocation(
    name: str, arguments: dict[str, Any], *, side_effects: bool = True
) -> ToolInvocation:
    return ToolInvocation(
        task_id="task-mcp",
        subtask_id="s1",
        call=ToolCall(id="c1", name=name, arguments=json.dumps(arguments)),
        capabilities=["data_analysis"],  # type: ignore[list-item]
        side_effects=side_effects,
    )


def test_the_config_file_is_checked_field_by_field(tmp_path: Path) -> None:
    path = tmp_path / "mcp.yaml"
    path.write_text(
        "servers:\n"
        "  - {name: a__b, command: x}\n"
        "  - {name: both, command: x, url: 'http://h/mcp'}\n"
        "  - {name: neither}\n"
        "  - {name: typo, url: 'http://h/mcp', header: {}}\n"
        "  - {name: stdio, command: x, headers: {A: b}}\n"
    )
    with pytest.raises(McpConfigError) as caught:
        load_mcp_config(path)
    message = str(caught.value)
    assert str(path) in message and "docs/tools.md" in message
    assert "servers.0.name: Value error, must not contain '__'" in message
    assert "give either `command` (stdio) or `url` (HTTP)" in message
    assert "servers.3.header: Extra inputs are not permitted" in message
    assert "headers go with `url`" in message
    path.write_text("servers:\n  - {name: a, command: x}\n  - {name: a, url: 'http://h/m'}\n")
    with pytest.raises(McpConfigError, match="unique; repeated: a"):
        load_mcp_config(path)
    with pytest.raises(McpConfigError, match="cannot read"):
        load_mcp_config(tmp_path / "missing.yaml")


async def test_discovery_turns_the_servers_schemas_into_tool_specs(toolset: McpToolset) -> None:
    names = [item.name for item in toolset.tools]
    expected = ["add", "crash", "fail", "huge", "leak_token", "pid", "slow", "write_note"]
    assert names == [f"demo__{n}" for n in expected] + [f"web__{n}" for n in expected]
    assert toolset.unavailable == {}
    tools = {item.name: item for item in toolset.tools}
    add = tools["web__add"].spec
    assert add.description == "Add two integers. (MCP server 'web')"
    assert add.parameters["type"] == "object" and add.parameters["required"] == ["a", "b"]
    assert add.parameters["properties"]["a"]["type"] == "integer"
    # readOnlyHint → no side effects; no annotation → changes the world
    assert not tools["demo__add"].side_effects and not tools["web__huge"].side_effects
    assert tools["demo__write_note"].side_effects and tools["web__crash"].side_effects
    registry = toolset.add_to(default_registry().copy())
    offered = [spec.name for spec in registry.specs_for(["data_analysis"])]  # type: ignore[list-item]
    assert "demo__add" in offered and "web__pid" in offered and "calculator" in offered


async def test_calls_are_bounded_checked_and_report_server_errors(
    toolset: McpToolset, make_activities: MakeActivities
) -> None:
    registry = toolset.add_to(default_registry().copy())
    activities = make_activities(registry, tool_output_max_bytes=8192)

    added = await activities.run(invocation("web__add", {"a": 2, "b": 40}), idempotency_key="k1")
    assert (added.content, added.is_error) == ("42", False)

    huge = await activities.run(invocation("demo__huge", {"size": 500_000}), idempotency_key="k2")
    assert not huge.is_error and huge.content is not None
    assert len(huge.content.encode()) <= 8192
    assert "[output truncated at" in huge.content and "of 500000" in huge.content

    failed = await activities.run(invocation("web__fail", {"reason": "no"}), idempotency_key="k3")
    assert failed.is_error and "Tool 'web__fail' failed:" in (failed.content or "")
    assert "cannot do that: no" in (failed.content or "")

    bad = await activities.run(invocation("demo__add", {"a": "two"}), idempotency_key="k4")
    assert bad.is_error and "'b' is a required property" in (bad.content or "")
    assert "a: 'two' is not of type 'integer'" in (bad.content or "")

    off = await activities.run(
        invocation("demo__write_note", {"text": "x"}, side_effects=False), idempotency_key="k5"
    )
    assert off.is_error and "off in this run" in (off.content or "")


async def test_a_side_effecting_mcp_call_is_recorded_and_not_repeated(
    toolset: McpToolset, make_activities: MakeActivities
) -> None:
    activities = make_activities(toolset.add_to(default_registry().copy()))
    key = f"wf-{uuid.uuid4().hex}:run:1"
    first = await activities.run(invocation("demo__write_note", {"text": "a"}), idempotency_key=key)
    again = await activities.run(invocation("demo__write_note", {"text": "a"}), idempotency_key=key)
    other = await activities.run(
        invocation("demo__write_note", {"text": "b"}), idempotency_key=key + "x"
    )
    assert first.content == again.content  # the retry got the record, the server ran once
    number = int((first.content or "").split()[1])
    assert other.content == f"note {number + 1} written"


async def test_a_header_secret_reaches_the_server_but_not_the_output_or_logs(
    toolset: McpToolset, make_activities: MakeActivities, token: str, caplog: Any
) -> None:
    activities = make_activities(toolset.add_to(default_registry().copy()))
    with structlog.testing.capture_logs() as logs:
        leaked = await activities.run(invocation("web__leak_token", {}), idempotency_key="k")
    assert leaked.content == "token=[REDACTED]"  # the server got it (else it answers 401)
    assert token not in json.dumps(logs, default=str) and token not in caplog.text
    assert token not in repr(toolset.sessions["web"].config)  # the config keeps ${VAR}


async def test_dead_servers_make_their_tools_unavailable_with_a_clear_reason(
    tmp_path: Path, make_activities: MakeActivities, data_dir: Path
) -> None:
    port = free_port()  # nothing listens there
    path = tmp_path / "mcp.json"
    path.write_text(
        json.dumps(
            {
                "servers": [
                    {"name": "gone", "command": sys.executable, "args": ["-c", "exit(1)"]},
                    {"name": "nohttp", "url": f"http://127.0.0.1:{port}/mcp"},
                    {
                        "name": "nokey",
                        "url": "http://127.0.0.1:1/mcp",
                        "headers": {"X": "${NO_SUCH_VAR_1}"},
                    },
                ]
            }
        )
    )
    settings = Settings(
        _env_file=None, data_dir=data_dir, mcp_servers=path, mcp_connect_timeout_s=CONNECT_S
    )
    with structlog.testing.capture_logs() as logs:
        toolset = await start_mcp_tools(settings)  # the worker's start: does not raise
    assert toolset is not None and toolset.tools == []
    assert "the server closed the connection (did the command exit?" in toolset.unavailable["gone"]
    assert f"127.0.0.1:{port}/mcp) is unavailable: ConnectError" in toolset.unavailable["nohttp"]
    assert "NO_SUCH_VAR_1 (referenced by headers.X) is not set" in toolset.unavailable["nokey"]
    warned = {entry["server"] for entry in logs if "mcp server unavailable" in entry["event"]}
    assert warned == {"gone", "nohttp", "nokey"}

    activities = make_activities(toolset.add_to(default_registry().copy()))
    outcome = await activities.run(invocation("nohttp__search", {}), idempotency_key="k")
    assert outcome.is_error
    assert (outcome.content or "").startswith("Tool 'nohttp__search' is unavailable: MCP server")
    assert "ConnectError" in (outcome.content or "")


async def test_a_stdio_server_that_dies_mid_run_is_restarted(
    make_activities: MakeActivities,
) -> None:
    async with await load_mcp_tools([stdio_config("solo")], connect_timeout_s=CONNECT_S) as toolset:
        # the restart happens within the call: give it the time a cold start takes here
        activities = make_activities(
            toolset.add_to(default_registry().copy()), tool_timeout_s=CONNECT_S
        )
        before = await activities.run(invocation("solo__pid", {}), idempotency_key="k1")
        crashed = await activities.run(invocation("solo__crash", {}), idempotency_key="k2")
        assert crashed.is_error
        assert "connection to MCP server 'solo' was lost during the call" in (crashed.content or "")
        assert "may or may not have taken effect" in (crashed.content or "")
        after = await activities.run(invocation("solo__pid", {}), idempotency_key="k3")
        assert not after.is_error and after.content != before.content  # a new process
        assert toolset.sessions["solo"].connections == 2
        pid = int(after.content or "0")
        assert psutil.pid_exists(pid)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


async def test_an_http_server_that_goes_away_errors_clearly_and_is_reconnected(
    make_activities: MakeActivities, token: str
) -> None:
    port = free_port()
    async with http_demo_server(port, token):
        toolset = await load_mcp_tools([http_config(port, "remote")], connect_timeout_s=CONNECT_S)
    async with toolset:  # the server is gone now
        activities = make_activities(toolset.add_to(default_registry().copy()))
        down = await activities.run(
            invocation("remote__add", {"a": 1, "b": 1}), idempotency_key="k"
        )
        assert down.is_error and "MCP server 'remote'" in (down.content or "")
        assert token not in (down.content or "")
        async with http_demo_server(port, token):  # back, as a new process
            back = await activities.run(
                invocation("remote__add", {"a": 1, "b": 2}), idempotency_key="k2"
            )
        assert (back.content, back.is_error) == ("3", False)


async def test_a_call_that_gives_up_on_a_slow_start_leaves_the_start_to_the_next(
    tmp_path: Path,
) -> None:
    starts = tmp_path / "starts.txt"
    config = stdio_config("slow", env={"DEMO_STARTS_FILE": str(starts), "DEMO_START_DELAY_S": "3"})
    session = McpServerSession(config, connect_timeout_s=CONNECT_S)
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.0):  # a tool call's limit, shorter than the start
                await session.connect()
        await session.connect()
        assert session.connections == 1
        assert len(starts.read_text().split()) == 1  # started once, not once per caller
    finally:
        await session.close()


async def test_the_example_config_of_the_docs_works(make_activities: MakeActivities) -> None:
    configs = load_mcp_config(Path(__file__).parents[3] / "examples" / "mcp" / "servers.yaml")
    assert [c.name for c in configs] == ["notes", "shared-notes"]
    notes = configs[0].model_copy(update={"command": sys.executable})  # this test's interpreter
    shared = configs[1].model_copy(update={"url": f"http://127.0.0.1:{free_port()}/mcp"})
    assert shared.tools == ["list_notes", "read_note"] and shared.headers
    async with await load_mcp_tools([notes], connect_timeout_s=CONNECT_S) as toolset:
        tools = {item.name: item for item in toolset.tools}
        assert sorted(tools) == ["notes__list_notes", "notes__read_note", "notes__write_note"]
        assert (
            tools["notes__write_note"].side_effects and not tools["notes__read_note"].side_effects
        )
        registry = toolset.add_to(default_registry().copy())
        coders = {spec.name for spec in registry.specs_for(["code_generation"])}  # type: ignore[list-item]
        assert "calculator" in coders and not any(n.startswith("notes__") for n in coders)
        activities = make_activities(registry)
        saved = await activities.run(
            invocation("notes__write_note", {"title": "plan", "text": "1. do"}),
            idempotency_key="k1",
        )
        listed = await activities.run(invocation("notes__list_notes", {}), idempotency_key="k2")
    assert saved.content == "saved 'plan'"
    assert listed.content == "notes of example:\nplan"  # env reached the process


async def test_the_config_picks_tools_and_overrides_the_side_effect_hints() -> None:
    config = stdio_config("picky", tools=["add", "nope"], side_effects=True)
    with structlog.testing.capture_logs() as logs:
        toolset = await load_mcp_tools([config], connect_timeout_s=CONNECT_S)
    async with toolset:
        assert [(t.name, t.side_effects) for t in toolset.tools] == [("picky__add", True)]
    (missing,) = [entry for entry in logs if "not on the server" in entry["event"]]
    assert missing["missing"] == ["nope"]


async def test_a_slow_mcp_call_times_out_and_the_session_stays_usable(
    toolset: McpToolset, make_activities: MakeActivities
) -> None:
    activities = make_activities(toolset.add_to(default_registry().copy()), tool_timeout_s=1.0)
    for server in ("demo", "web"):
        slow = await activities.run(
            invocation(f"{server}__slow", {"seconds": 30}), idempotency_key="k"
        )
        assert slow.is_error and slow.content == f"Tool '{server}__slow' did not finish within 1 s."
        quick = await activities.run(
            invocation(f"{server}__add", {"a": 1, "b": 1}), idempotency_key="k"
        )
        assert quick.content == "2"
    assert toolset.sessions["demo"].connections == 1  # the same session, not a restart
