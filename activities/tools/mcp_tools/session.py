"""One client session per MCP server per worker process, reconnected when it is lost.

The `mcp` SDK's `Client` runs anyio task groups, which must be entered and left by the same
task; so each connection lives in a runner task of its own, and tool calls (made by many
activity tasks) only send requests over it. Before each call a ping checks the connection:
a stdio server that died is started again, an HTTP server is reconnected. A call during
which the connection is lost is not repeated (it may have had its effect): it fails with a
message saying so, and the next call reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any, cast

import anyio
import httpx2
import structlog
from mcp import Client, MCPError, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_types import (
    CONNECTION_CLOSED,
    CallToolResult,
    Implementation,
    RequestParamsMeta,
    Tool,
)

from mahsm.activities.tools.definition import ToolError
from mahsm.activities.tools.mcp_tools.config import McpServerConfig, resolve, resolve_all
from mahsm.redaction import redact_text

log = structlog.get_logger(__name__)

STOP_TIMEOUT_S = 10.0
MAX_TOOL_PAGES = 100
IDEMPOTENCY_META_KEY = "io.mahsm/idempotency_key"
"""The `_meta` key of a call's idempotency key: a server may use it to run a call once."""
CLIENT_INFO = Implementation(name="mahsm", version="1")


class McpUnavailable(ToolError):
    """The server cannot be reached (or started); its tools cannot be used now."""


class _WatchedReadStream:
    """The transport's read stream, calling `on_end` when the server closes it."""

    def __init__(self, inner: Any, on_end: Callable[[], None]) -> None:
        self._inner = inner
        self._on_end = on_end

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self._on_end()
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> _WatchedReadStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self._inner.__anext__()
        except StopAsyncIteration:
            self._on_end()
            raise

    async def __aenter__(self) -> _WatchedReadStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _WatchedTransport(contextlib.AbstractAsyncContextManager[Any]):
    """Already-open transport streams, with the read side watched for its end."""

    def __init__(self, streams: tuple[Any, Any], on_end: Callable[[], None]) -> None:
        self._streams = (_WatchedReadStream(streams[0], on_end), streams[1])

    async def __aenter__(self) -> tuple[Any, Any]:
        return self._streams

    async def __aexit__(self, *exc: object) -> None:
        return None


def describe(error: BaseException, *, stdio: bool = False) -> str:
    """A one-line, redacted account of why a connection failed."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    if isinstance(error, MCPError) and error.code == CONNECTION_CLOSED:
        hint = " (did the command exit? see the worker's stderr)" if stdio else ""
        return f"the server closed the connection{hint}"
    if isinstance(error, TimeoutError):
        return "no answer in time"
    text = str(error) or type(error).__name__
    return redact_text(f"{type(error).__name__}: {text}")


class McpServerSession:
    """The worker's connection to one MCP server, started on first use or at worker start."""

    def __init__(self, config: McpServerConfig, *, connect_timeout_s: float) -> None:
        self.config = config
        self.connect_timeout_s = connect_timeout_s
        self._client: Client | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._ready: asyncio.Future[Client] | None = None
        self._deadline = 0.0
        self._lock = asyncio.Lock()
        self.connections = 0  # how many times a connection was made (restarts show here)

    @property
    def name(self) -> str:
        """The server's name (its tools' prefix)."""
        return self.config.name

    async def list_tools(self) -> list[Tool]:
        """Every tool the server lists (all pages).

        Raises:
            McpUnavailable: The server cannot be reached.
        """
        client = await self._live_client()
        tools: list[Tool] = []
        cursor: str | None = None
        try:
            for _ in range(MAX_TOOL_PAGES):
                page = await client.list_tools(cursor=cursor)
                tools += page.tools
                cursor = page.next_cursor
                if cursor is None:
                    break
        except Exception as error:
            await self._drop(client)
            raise McpUnavailable(
                f"MCP server '{self.name}' is unavailable: listing its tools failed:"
                f" {describe(error, stdio=self._stdio)}"
            ) from None
        return tools

    async def call_tool(
        self, name: str, arguments: dict[str, Any], *, idempotency_key: str
    ) -> CallToolResult:
        """Call `name` on the server; the idempotency key travels in the request's `_meta`.

        Raises:
            McpUnavailable: The server cannot be reached, or the connection was lost during
                the call (which may or may not have had its effect).
            ToolError: The server refused the call (a protocol error, e.g. unknown tool).
        """
        client = await self._live_client()
        try:
            meta = cast(RequestParamsMeta, {IDEMPOTENCY_META_KEY: idempotency_key})
            return await client.call_tool(name, arguments, meta=meta)
        except MCPError as error:
            if error.code != CONNECTION_CLOSED:
                raise ToolError(
                    f"MCP server '{self.name}' refused the call: {redact_text(error.message)}"
                ) from None
            failure: BaseException = error
        except Exception as error:
            failure = error
        await self._drop(client)
        raise McpUnavailable(
            f"the connection to MCP server '{self.name}' was lost during the call"
            f" ({describe(failure, stdio=self._stdio)}); it may or may not have taken effect."
            " The worker reconnects on the next call"
        ) from None

    async def _live_client(self) -> Client:
        client = self._client  # None once the connection ended (see `_run`): connect again
        return client if client is not None else await self.connect()

    async def connect(self) -> Client:
        """The connected client, connecting (starting the command) if there is none.

        Raises:
            McpUnavailable: Connecting failed or took longer than `connect_timeout_s`.
        """
        async with self._lock:
            if self._client is not None:
                return self._client
            loop = asyncio.get_running_loop()
            if self._ready is None or self._ready.done():
                # A connection still starting is kept: a call that gave up waiting for it (its
                # own time limit) must not make the next call start the server all over again.
                await self._stop_runner()
                self._ready = loop.create_future()
                self._stop = asyncio.Event()
                self._runner = asyncio.create_task(self._run(self._ready, self._stop))
                self._deadline = loop.time() + self.connect_timeout_s
            try:
                async with asyncio.timeout_at(self._deadline):
                    client = await asyncio.shield(self._ready)
            except Exception as error:
                await self._stop_runner()
                raise McpUnavailable(
                    f"MCP server '{self.name}' ({self.config.transport}: {self._where()}) is"
                    f" unavailable: {describe(error, stdio=self._stdio)}"
                ) from None
            self._client = client
            self.connections += 1
            return client

    async def close(self) -> None:
        """End the session (a stdio server's process is stopped)."""
        async with self._lock:
            self._client = None
            await self._stop_runner()

    async def _drop(self, client: Client) -> None:
        async with self._lock:
            if self._client is client:  # not a newer connection made meanwhile
                self._client = None
                await self._stop_runner()

    async def _stop_runner(self) -> None:
        runner, self._runner = self._runner, None
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()
        self._ready = None
        if runner is None:
            return
        self._stop.set()
        done, _ = await asyncio.wait({runner}, timeout=STOP_TIMEOUT_S)
        if not done:
            runner.cancel()
            with contextlib.suppress(BaseException):
                await runner

    async def _run(self, ready: asyncio.Future[Client], stop: asyncio.Event) -> None:
        """Hold one connection open until `stop` is set; enters and leaves it in this task."""
        ended = False

        def on_end() -> None:
            nonlocal ended
            ended = True
            stop.set()

        client: Client | None = None
        try:
            async with AsyncExitStack() as stack:
                streams = await stack.enter_async_context(await self._transport(stack))
                client = Client(_WatchedTransport(streams, on_end), client_info=CLIENT_INFO)
                await stack.enter_async_context(client)
                if ready.done():  # given up on meanwhile (the session was closed)
                    return
                ready.set_result(client)
                await stop.wait()
                if ended:  # the server closed the connection (a stdio server exited)
                    log.warning(
                        "mcp server connection ended; it restarts on the next call",
                        server=self.name,
                    )
                    self._forget(client)
        except BaseException as error:
            if not ready.done():
                ready.set_exception(error if isinstance(error, Exception) else TimeoutError())
            elif not stop.is_set() or ended:
                log.warning("mcp session failed", server=self.name, error=describe(error))
            if client is not None:
                self._forget(client)
            if not isinstance(error, Exception):
                raise

    def _forget(self, client: Client) -> None:
        if self._client is client:
            self._client = None

    async def _transport(self, stack: AsyncExitStack) -> Any:
        config = self.config
        if config.command is not None:
            parameters = StdioServerParameters(
                command=resolve(config.command, field="command"),
                args=[resolve(arg, field="args") for arg in config.args],
                env=resolve_all(config.env, field="env"),
                cwd=config.cwd,
            )
            return stdio_client(parameters)
        assert config.url is not None
        headers = resolve_all(config.headers, field="headers")
        http: httpx2.AsyncClient = create_mcp_http_client(headers=headers)
        await stack.enter_async_context(http)
        return streamable_http_client(resolve(config.url, field="url"), http_client=http)

    @property
    def _stdio(self) -> bool:
        return self.config.command is not None

    def _where(self) -> str:
        return redact_text(self.config.where())
