"""Dependencies of the routes: settings, the Temporal client and the database pool.

`Backends` is created in the app's lifespan and kept on `app.state`. It connects to Temporal
and Postgres at start-up if it can, and otherwise on first use, so the API starts (and
`/health` answers) while either service is down.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import asyncpg
import structlog
from fastapi import Depends, HTTPException, Request
from temporalio.client import Client

from mahsm.db.pool import create_pool
from mahsm.logging import redact_text
from mahsm.settings import Settings
from mahsm.temporal_client import connect

log = structlog.get_logger(__name__)

CONNECT_TIMEOUT_S = 5.0
_DATABASE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class ApiError(HTTPException):
    """An HTTP error rendered as `{"code", "message", "details"}`.

    Args:
        status_code: HTTP status.
        code: Stable, machine-readable error code, e.g. "task_not_found".
        message: What happened and how to fix it, for a person.
        details: Optional structured context.
    """

    def __init__(self, status_code: int, *, code: str, message: str, details: Any = None) -> None:
        super().__init__(status_code, detail={"code": code, "message": message, "details": details})
        self.code = code
        self.message = message
        self.details = details


def invalid(details: list[dict[str, Any]]) -> ApiError:
    """One 422 `validation_error` listing every problem, in the API's error format."""
    shown = "; ".join(".".join(str(p) for p in d["loc"]) + f": {d['msg']}" for d in details)
    return ApiError(
        422, code="validation_error", message=f"Invalid request: {shown}", details=details
    )


class BackendUnavailable(ApiError):
    """Temporal or Postgres cannot be reached right now (HTTP 503)."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(
            503,
            code=f"{service}_unavailable",
            message=f"{service} is unreachable: {reason}. Retry later; see GET /health.",
        )
        self.reason = reason


class Backends:
    """Lazily connected Temporal client and asyncpg pool, shared by all requests.

    Args:
        settings: Where Temporal and Postgres are.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Client | None = None
        self._pool: asyncpg.Pool | None = None
        self._client_lock = asyncio.Lock()
        self._pool_lock = asyncio.Lock()

    async def connect_all(self) -> None:
        """Try both connections once (at start-up); failures are logged and retried later."""
        for service, connect_one in (("temporal", self.temporal), ("database", self.pool)):
            try:
                await connect_one()
            except BackendUnavailable as error:
                log.warning("backend unavailable at start-up", service=service, error=error.detail)

    async def temporal(self) -> Client:
        """The Temporal client, connecting first if needed.

        Raises:
            BackendUnavailable: Temporal cannot be reached.
        """
        if self._client is not None:
            return self._client
        async with self._client_lock:
            if self._client is None:
                try:
                    self._client = await asyncio.wait_for(
                        connect(self.settings), timeout=CONNECT_TIMEOUT_S
                    )
                except (RuntimeError, OSError, TimeoutError) as error:
                    raise BackendUnavailable("temporal", _reason(error)) from error
                log.info("connected to temporal", address=self.settings.temporal_target)
            return self._client

    async def pool(self) -> asyncpg.Pool:
        """The database pool, creating it first if needed.

        Raises:
            BackendUnavailable: Postgres cannot be reached or is not configured.
        """
        if self._pool is not None:
            return self._pool
        async with self._pool_lock:
            if self._pool is None:
                if self.settings.database_url is None:
                    raise BackendUnavailable("database", "MAHSM_DATABASE_URL is not set")
                url = self.settings.database_url.get_secret_value()
                try:
                    self._pool = await asyncio.wait_for(
                        # The API leaves no session state behind (see create_pool): no
                        # reset round trip each time a request gives its connection back.
                        create_pool(
                            url, max_size=self.settings.database_pool_max, session_reset=False
                        ),
                        timeout=CONNECT_TIMEOUT_S,
                    )
                except _DATABASE_ERRORS as error:
                    raise BackendUnavailable("database", _reason(error)) from error
                log.info("connected to database", url=redact_text(url))
            return self._pool

    async def close(self) -> None:
        """Close the pool (the Temporal client needs no closing)."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        self._client = None


def _reason(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, TimeoutError):
        text = f"no answer within {CONNECT_TIMEOUT_S:.0f}s"
    return redact_text(text)


# Dependencies are `async def` although they do no I/O: FastAPI runs a plain `def` dependency
# in a worker thread, a hop per dependency per request that a busy event loop pays in latency.


def _backends(request: Request) -> Backends:
    backends: Backends = request.app.state.backends
    return backends


async def get_backends(request: Request) -> Backends:
    """The app's `Backends`, created in the lifespan."""
    return _backends(request)


async def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_temporal_client(request: Request) -> Client:
    """The Temporal client; 503 `temporal_unavailable` while Temporal is down."""
    return await _backends(request).temporal()


async def get_db_pool(request: Request) -> asyncpg.Pool:
    """The asyncpg pool; 503 `database_unavailable` while Postgres is down."""
    return await _backends(request).pool()


BackendsDep = Annotated[Backends, Depends(get_backends)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
TemporalClientDep = Annotated[Client, Depends(get_temporal_client)]
DbPoolDep = Annotated[asyncpg.Pool, Depends(get_db_pool)]
