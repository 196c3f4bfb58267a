"""A small MCP server for the example in docs/tools.md: notes kept in memory.

    python examples/mcp/notes_server.py                   # stdio (the worker starts it)
    python examples/mcp/notes_server.py http 8765         # streamable HTTP on 127.0.0.1:8765/mcp

Over HTTP, when NOTES_TOKEN is set, requests must carry `Authorization: Bearer $NOTES_TOKEN`.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

server = MCPServer("notes")
NOTES: dict[str, str] = {}


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def list_notes() -> str:
    """The titles of all notes, one per line."""
    owner = os.environ.get("NOTES_OWNER", "nobody")
    return f"notes of {owner}:\n" + ("\n".join(sorted(NOTES)) or "(none)")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def read_note(title: str) -> str:
    """The text of the note called `title`."""
    return NOTES.get(title, f"no note called {title!r}")


@server.tool()
def write_note(title: str, text: str) -> str:
    """Create or replace the note called `title` (changes the world: no readOnlyHint)."""
    NOTES[title] = text
    return f"saved {title!r}"


def _with_token(app: Any, token: str) -> Any:
    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        given = dict(scope.get("headers") or []).get(b"authorization", b"").decode()
        if scope["type"] == "http" and given != f"Bearer {token}":
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b"unauthorized"})
            return
        await app(scope, receive, send)

    return guarded


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "http":
        import uvicorn

        app = server.streamable_http_app()
        token = os.environ.get("NOTES_TOKEN")
        uvicorn.run(
            _with_token(app, token) if token else app, host="127.0.0.1", port=int(sys.argv[2])
        )
    else:
        server.run("stdio")
