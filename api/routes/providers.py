"""`GET /providers`: every model's circuit breaker, as the workers share it in Postgres."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from mahsm.api.auth import authenticate
from mahsm.api.deps import DbPoolDep, SettingsDep
from mahsm.api.routes.tasks import error_responses

router = APIRouter(tags=["providers"], dependencies=[Depends(authenticate)])

RECENT_TRANSITIONS = 5


class BreakerTransition(BaseModel):
    """One change of a breaker's state."""

    from_state: str
    to_state: str
    reason: str
    at: datetime


class ProviderView(BaseModel):
    """The circuit breaker of one 'provider/model'."""

    model: str = Field(description="'provider/model'")
    provider: str
    state: Literal["closed", "open", "half_open"] = Field(
        description="half_open: one probe call is in flight"
    )
    recent_failures: int = Field(description="counted failures within the window")
    last_error: str | None = None
    opened_at: datetime | None = None
    next_probe_at: datetime | None = Field(
        default=None, description="when an open circuit lets one probe call through"
    )
    updated_at: datetime
    transitions: list[BreakerTransition] = Field(
        default_factory=list, description=f"the last {RECENT_TRANSITIONS}, newest first"
    )


class ProvidersView(BaseModel):
    """Every model a worker has called, with its breaker, and the rules (this process's)."""

    providers: list[ProviderView]
    failures: int = Field(description="failures within the window that open a circuit")
    window_s: float
    cooldown_s: float


@router.get("/providers", response_model=ProvidersView, responses=error_responses(401, 503))
async def providers(pool: DbPoolDep, settings: SettingsDep) -> ProvidersView:
    """Breaker state of every 'provider/model' the workers have called."""
    rows = await pool.fetch(
        "SELECT b.*, (SELECT count(*) FROM unnest(b.failures) AS f"
        "   WHERE f > now() - make_interval(secs => $1)) AS recent"
        " FROM provider_breakers AS b ORDER BY b.model",
        settings.breaker_window_s,
    )
    transitions = await pool.fetch(
        "SELECT model, from_state, to_state, reason, at FROM ("
        "  SELECT *, row_number() OVER (PARTITION BY model ORDER BY at DESC, id DESC) AS n"
        "  FROM provider_breaker_transitions) AS t"
        " WHERE n <= $1 ORDER BY model, at DESC, id DESC",
        RECENT_TRANSITIONS,
    )
    by_model: dict[str, list[BreakerTransition]] = {}
    for t in transitions:
        by_model.setdefault(t["model"], []).append(
            BreakerTransition(
                from_state=t["from_state"], to_state=t["to_state"], reason=t["reason"], at=t["at"]
            )
        )
    return ProvidersView(
        providers=[
            ProviderView(
                model=r["model"],
                provider=r["model"].partition("/")[0],
                state=r["state"],
                recent_failures=r["recent"],
                last_error=r["last_error"],
                opened_at=r["opened_at"],
                next_probe_at=r["next_probe_at"],
                updated_at=r["updated_at"],
                transitions=by_model.get(r["model"], []),
            )
            for r in rows
        ],
        failures=settings.breaker_failures,
        window_s=settings.breaker_window_s,
        cooldown_s=settings.breaker_cooldown_s,
    )
