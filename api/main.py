"""The FastAPI application: lifespan (Temporal client, database pool), error format, routers."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mahsm.api.body_limit import BodyLimitMiddleware
from mahsm.api.dashboard import add_dashboard
from mahsm.api.deps import Backends
from mahsm.api.docs_ui import add_docs
from mahsm.api.request_tracing import RequestTracingMiddleware
from mahsm.api.routes import (
    agents,
    artifacts,
    datasets,
    events,
    experiments,
    health,
    logs,
    optimizations,
    pipelines,
    providers,
    tasks,
    transcripts,
    usage,
)
from mahsm.api.routes import metrics as metrics_route
from mahsm.pipelines.files import named_errors
from mahsm.settings import Settings, get_settings
from mahsm.tracing import configure_tracing

log = structlog.get_logger(__name__)

# Default `code` of an HTTPException raised without one.
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The JSON shape of every error response."""
    return {"code": code, "message": message, "details": details}


def _encodable(value: Any) -> Any:
    """`value` as JSON can carry it, for echoing a rejected input back in `details`.

    Text UTF-8 cannot encode (a lone surrogate) is replaced, and NaN or an infinity (JSON has
    neither; Python's parser reads `NaN`, `Infinity` and `1e400`) becomes its name as a string.
    """
    if isinstance(value, str):
        return value.encode("utf-8", errors="replace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value).replace("inf", "Infinity").replace("nan", "NaN")
    if isinstance(value, dict):
        return {_encodable(k): _encodable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encodable(v) for v in value]
    return value


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail
    if isinstance(detail, dict) and "code" in detail and "message" in detail:
        body = error_body(str(detail["code"]), str(detail["message"]), detail.get("details"))
    else:
        code = _CODES.get(exc.status_code, f"http_{exc.status_code}")
        body = error_body(code, str(detail))
    return JSONResponse(
        _encodable(jsonable_encoder(body)), status_code=exc.status_code, headers=exc.headers
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    found = named_errors(exc.errors(), exc.body)  # pipeline steps by name, not position
    problems = [
        f"{'.'.join(str(part) for part in error['loc'])}: {error.get('msg', '')}" for error in found
    ]
    body = error_body("validation_error", "Invalid request: " + "; ".join(problems), found)
    return JSONResponse(_encodable(jsonable_encoder(body)), status_code=422)


async def _unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", error_type=type(exc).__name__)
    body = error_body("internal_error", "Internal server error; the API log has the details.")
    return JSONResponse(body, status_code=500)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API.

    Args:
        settings: Configuration; the process settings (`MAHSM_*`) when omitted.

    Returns:
        The app. Its lifespan connects to Temporal and Postgres once; if either is down the
        app still starts, `/health` reports it, and the connection is retried on next use.
    """
    resolved = settings or get_settings()
    tracing = configure_tracing(service_name="mahsm-api")  # before the lifespan connects

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        backends = Backends(resolved)
        app.state.settings = resolved
        app.state.backends = backends
        await backends.connect_all()
        try:
            yield
        finally:
            await backends.close()

    app = FastAPI(
        title="MAHSM",
        summary="Durable multi-agent LLM tasks on Temporal.",
        version="0.1.0",
        lifespan=lifespan,
        # MAHSM's request span (RequestTracingMiddleware) is the parent of the task's spans;
        # FastAPI's own (scope `fastapi`, not exported) would sit between and break the tree.
        telemetry={"tracing": False},
        docs_url=None,  # served by add_docs from local files
        redoc_url=None,
    )
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_middleware(BodyLimitMiddleware)
    if tracing.enabled:  # off, even a no-op span per request and per streamed event costs
        app.add_middleware(RequestTracingMiddleware)
    app.include_router(health.router)
    app.include_router(tasks.router)
    app.include_router(events.router)
    app.include_router(agents.router)
    app.include_router(providers.router)
    app.include_router(pipelines.router)
    app.include_router(artifacts.router)
    app.include_router(optimizations.router)
    app.include_router(transcripts.router)
    app.include_router(logs.router)
    app.include_router(experiments.router)
    app.include_router(datasets.router)
    app.include_router(usage.router)
    app.include_router(metrics_route.router)
    add_docs(app)
    add_dashboard(app)
    return app
