"""Tools from Model Context Protocol servers (stdio and streamable HTTP); see docs/tools.md.

Imported by the worker only (never by workflows): it imports the `mcp` SDK.
"""

from mahsm.activities.tools.mcp_tools.config import McpConfigError, McpServerConfig, load_mcp_config
from mahsm.activities.tools.mcp_tools.session import McpServerSession, McpUnavailable
from mahsm.activities.tools.mcp_tools.tools import McpTool
from mahsm.activities.tools.mcp_tools.toolset import McpToolset, load_mcp_tools

__all__ = [
    "McpConfigError",
    "McpServerConfig",
    "McpServerSession",
    "McpTool",
    "McpToolset",
    "McpUnavailable",
    "load_mcp_config",
    "load_mcp_tools",
]
