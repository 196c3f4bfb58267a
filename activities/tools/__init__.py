"""Agent tools: one registry, the built-in tool families, and the `tool_execute` activity.

Importing this package registers the built-in tools on the default registry, so any
import of `mahsm.activities.tools.*` (including `specs_for` from workflow code) sees them.
"""

# The built-in tool families register themselves on import.
from mahsm.activities.tools import calculator, files, shared_state, sql
from mahsm.activities.tools.activity import ToolActivities, idempotency_key
from mahsm.activities.tools.registry import (
    EVERY_CAPABILITY,
    RegisteredTool,
    ToolArgumentsError,
    ToolContext,
    ToolError,
    ToolRegistry,
    build_tool,
    default_registry,
    specs_for,
    tool,
)

__all__ = [
    "EVERY_CAPABILITY",
    "RegisteredTool",
    "ToolActivities",
    "ToolArgumentsError",
    "ToolContext",
    "ToolError",
    "ToolRegistry",
    "build_tool",
    "calculator",
    "default_registry",
    "files",
    "idempotency_key",
    "shared_state",
    "specs_for",
    "sql",
    "tool",
]
