"""Discover the tools of a worker's MCP servers and keep their sessions: `load_mcp_tools`.

At worker start every server is connected (at once, each within the connect timeout) and
asked for its tools. A server that cannot be reached is logged with the reason and its tools
are unavailable; the worker starts anyway, and a call naming one of its tools gets that
reason back as a tool error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType

import structlog

from mahsm.activities.tools.definition import RegisteredTool, ToolError
from mahsm.activities.tools.mcp_tools.config import McpServerConfig
from mahsm.activities.tools.mcp_tools.session import McpServerSession, describe
from mahsm.activities.tools.mcp_tools.tools import SEPARATOR, build_mcp_tool, tool_name
from mahsm.activities.tools.registry import ToolRegistry

log = structlog.get_logger(__name__)

DEFAULT_CONNECT_TIMEOUT_S = 30.0


@dataclass
class McpToolset:
    """The tools of some MCP servers, and the sessions that run them.

    Attributes:
        tools: One tool per server tool, named `<server>__<tool>`, sorted by name.
        unavailable: Why each server that could not be used is unavailable, by server name.
        sessions: The session of each server, by name (servers down at start included:
            their sessions connect on demand).
    """

    tools: list[RegisteredTool] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, McpServerSession] = field(default_factory=dict)

    def add_to(self, registry: ToolRegistry) -> ToolRegistry:
        """Add the tools to `registry`, and the reasons of unavailable servers."""
        for item in self.tools:
            registry.add(item)
        for server, reason in self.unavailable.items():
            registry.mark_unavailable(f"{server}{SEPARATOR}", reason)
        return registry

    async def close(self) -> None:
        """Close every session (stdio servers' processes are stopped)."""
        await asyncio.gather(*(session.close() for session in self.sessions.values()))

    async def __aenter__(self) -> McpToolset:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


async def load_mcp_tools(
    configs: Iterable[McpServerConfig], *, connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
) -> McpToolset:
    """Connect to each server and turn its tools into MAHSM tools.

    Never raises for a server that is down: it is listed in `unavailable` (and logged).

    Args:
        configs: The servers.
        connect_timeout_s: How long connecting to one server (starting its command) may take.

    Returns:
        The toolset; close it (or use it as an async context manager) to end the sessions.
    """
    sessions = [McpServerSession(config, connect_timeout_s=connect_timeout_s) for config in configs]
    found = await asyncio.gather(*(_discover(session) for session in sessions))
    toolset = McpToolset(sessions={session.name: session for session in sessions})
    for session, result in zip(sessions, found, strict=True):
        if isinstance(result, str):
            toolset.unavailable[session.name] = result
            log.warning(
                "mcp server unavailable; its tools are not offered",
                server=session.name,
                transport=session.config.transport,
                reason=result,
            )
            await session.close()
            continue
        toolset.tools += result
        log.info(
            "mcp server connected",
            server=session.name,
            transport=session.config.transport,
            tools=[item.name for item in result],
        )
    toolset.tools.sort(key=lambda item: item.name)
    return toolset


async def _discover(session: McpServerSession) -> list[RegisteredTool] | str:
    """The server's tools, or why it is unavailable."""
    try:
        listed = await session.list_tools()
    except ToolError as error:
        return str(error)
    except Exception as error:  # never fail the worker's start because of a server
        return f"MCP server '{session.name}' is unavailable: {describe(error)}"
    wanted = session.config.tools
    tools: list[RegisteredTool] = []
    for tool in listed:
        if wanted is not None and tool.name not in wanted:
            continue
        name = tool_name(session.name, tool.name)
        if name is None or any(item.name == name for item in tools):
            log.warning(
                "mcp tool skipped: no valid unique name", server=session.name, tool=tool.name
            )
            continue
        tools.append(build_mcp_tool(session, tool, name=name))
    missing = sorted(set(wanted or ()) - {tool.name for tool in listed})
    if missing:
        log.warning(
            "mcp tools named in the config are not on the server",
            server=session.name,
            missing=missing,
        )
    return tools
