"""`GET /health`: whether the API can reach Temporal and the database."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from mahsm.api.deps import BackendsDep, BackendUnavailable
from mahsm.logging import redact_text

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_S = 3.0


class ComponentHealth(BaseModel):
    """State of one backing service."""

    status: Literal["ok", "error"]
    detail: str | None = None


class Health(BaseModel):
    """State of the API's backing services; `degraded` when any of them fails."""

    status: Literal["ok", "degraded"]
    temporal: ComponentHealth
    database: ComponentHealth


async def _check_temporal(backends: BackendsDep) -> ComponentHealth:
    try:
        client = await backends.temporal()
        serving = await client.service_client.check_health(
            timeout=timedelta(seconds=CHECK_TIMEOUT_S)
        )
    except BackendUnavailable as error:
        return ComponentHealth(status="error", detail=error.reason)
    except Exception as error:  # RPCError, transport errors: reported, not raised
        return ComponentHealth(status="error", detail=redact_text(str(error)) or repr(error))
    if not serving:
        return ComponentHealth(status="error", detail="Temporal reports NOT_SERVING")
    return ComponentHealth(status="ok")


async def _check_database(backends: BackendsDep) -> ComponentHealth:
    try:
        pool = await backends.pool()
        await pool.fetchval("SELECT 1", timeout=CHECK_TIMEOUT_S)
    except BackendUnavailable as error:
        return ComponentHealth(status="error", detail=error.reason)
    except Exception as error:  # connection lost, timeout: reported, not raised
        return ComponentHealth(status="error", detail=redact_text(str(error)) or repr(error))
    return ComponentHealth(status="ok")


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "A backing service is unreachable"}},
)
async def health(backends: BackendsDep) -> JSONResponse:
    """Check Temporal and the database; 200 when both answer, 503 otherwise."""
    temporal, database = await asyncio.gather(_check_temporal(backends), _check_database(backends))
    ok = temporal.status == "ok" and database.status == "ok"
    body = Health(status="ok" if ok else "degraded", temporal=temporal, database=database)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=200 if ok else 503)
