"""The worker's MCP tools, from `MAHSM_MCP_SERVERS`."""

from __future__ import annotations

from mahsm.activities.tools.mcp_tools.config import McpConfigError, load_mcp_config
from mahsm.activities.tools.mcp_tools.toolset import McpToolset, load_mcp_tools
from mahsm.settings import Settings, SettingsError


async def start_mcp_tools(settings: Settings) -> McpToolset | None:
    """Discover the tools of the servers `settings.mcp_servers` lists; None when it is unset.

    Raises:
        SettingsError: The servers file is missing or invalid (a server that is down is not
            an error: its tools are unavailable).
    """
    if settings.mcp_servers is None:
        return None
    try:
        configs = load_mcp_config(settings.mcp_servers)
    except McpConfigError as error:
        raise SettingsError(str(error)) from None
    return await load_mcp_tools(configs, connect_timeout_s=settings.mcp_connect_timeout_s)
