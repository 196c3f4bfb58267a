"""`GET /metrics`: this API process's Prometheus metrics (Temporal's are on the workers)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from mahsm import metrics as registry

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response, include_in_schema=True)
async def metrics() -> Response:
    """Prometheus text exposition; unauthenticated, like `/health` (no ids, no content)."""
    body, content_type = registry.exposition()
    return Response(content=body, media_type=content_type)
