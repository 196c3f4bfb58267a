"""Start and stop the demo MCP server as a subprocess, for the tests."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

DEMO_SERVER = Path(__file__).with_name("demo_server.py")
READY_WITHIN_S = 60.0


def free_port() -> int:
    """A loopback port nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _listening(port: int, process: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(READY_WITHIN_S):
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"demo MCP server exited with {process.returncode}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.1)  # uvicorn gives no other sign it is up
                continue
            writer.close()
            await writer.wait_closed()
            return


@asynccontextmanager
async def http_demo_server(port: int, token: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """The demo server on 127.0.0.1:`port`/mcp, requiring `Bearer <token>`; killed at the end."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(DEMO_SERVER), "http", str(port), token
    )
    try:
        await _listening(port, process)
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
