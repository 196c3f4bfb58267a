"""A real MCP server for the tests, written with the `mcp` SDK; run as a subprocess.

    python demo_server.py stdio
    python demo_server.py http PORT TOKEN   # streamable HTTP on 127.0.0.1:PORT/mcp; every
                                            # request must carry `Authorization: Bearer TOKEN`

Tools: `add` (read-only), `huge`, `fail` (an isError result), `crash` (the process exits
mid-call), `pid`, `leak_token` (returns the bearer token it received) and `write.note` (no
annotations: side-effecting; '.' is not allowed in a MAHSM tool name).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

if os.environ.get("DEMO_STARTS_FILE"):  # lets a test count the starts (before slow imports)
    with open(os.environ["DEMO_STARTS_FILE"], "a") as starts:
        starts.write(f"{os.getpid()}\n")
time.sleep(float(os.environ.get("DEMO_START_DELAY_S", "0")))  # a slow server, for a test

from mcp.server.mcpserver import MCPServer  # noqa: E402  (after the start marker)
from mcp.server.mcpserver.exceptions import ToolError  # noqa: E402
from mcp_types import ToolAnnotations  # noqa: E402

server = MCPServer("demo")
NOTES: list[str] = []
SEEN_TOKEN: list[str] = []


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def add(a: int, b: int) -> str:
    """Add two integers."""
    return str(a + b)


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def huge(size: int) -> str:
    """Return `size` characters."""
    return "x" * size


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def fail(reason: str) -> str:
    """Always fails, with `reason`."""
    raise ToolError(f"cannot do that: {reason}")


@server.tool()
def crash() -> str:
    """The server process exits while answering."""
    os._exit(3)


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
async def slow(seconds: float) -> str:
    """Answer after `seconds`."""
    await asyncio.sleep(seconds)
    return "done"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def pid() -> str:
    """The server's process id."""
    return str(os.getpid())


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def leak_token() -> str:
    """The bearer token this server was called with (a leak MAHSM must redact)."""
    return f"token={SEEN_TOKEN[-1] if SEEN_TOKEN else 'none'}"


@server.tool(name="write.note")
def write_note(text: str) -> str:
    """Write a note (changes the world)."""
    NOTES.append(text)
    return f"note {len(NOTES)} written"


def _guarded(app: Any, token: str) -> Any:
    """The app, refusing requests without the bearer token (as a real hosted server would)."""

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            given = headers.get(b"authorization", b"").decode()
            if given != f"Bearer {token}":
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"unauthorized"})
                return
            SEEN_TOKEN.append(token)
        await app(scope, receive, send)

    return guarded


def main() -> None:
    if sys.argv[1] == "stdio":
        server.run("stdio")
        return
    import uvicorn

    port, token = int(sys.argv[2]), sys.argv[3]
    app = _guarded(server.streamable_http_app(), token)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
