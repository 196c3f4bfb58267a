"""`GET /providers`: the breakers the workers share in Postgres, as an operator reads them."""

from __future__ import annotations

import asyncpg
from temporalio.testing import WorkflowEnvironment

from mahsm.activities.llm.breaker import BreakerConfig, CircuitBreakers
from mahsm.activities.llm.errors import classify_status
from mahsm.api.main import create_app
from tests.api.conftest import api_settings, asgi_client

KEYS = {"key-alice": "alice"}


async def test_providers_shows_each_breaker_with_its_state_and_transitions(
    temporal_env: WorkflowEnvironment, database_url: str, db_pool: asyncpg.Pool
) -> None:
    breakers = CircuitBreakers(db_pool, BreakerConfig(failures=2, cooldown_s=45))
    await breakers.admit("openai/steady", has_fallback=False)  # known, never failed
    await breakers.admit("scripted/test", has_fallback=False)  # not guarded: not listed
    failing = await breakers.admit("openai/failing", has_fallback=True)
    for _ in range(2):
        await breakers.failed(failing, classify_status(503, "down", provider="openai"))

    app = create_app(api_settings(temporal_env, database_url, api_keys=KEYS))
    async with asgi_client(app) as http:
        assert (await http.get("/providers")).status_code == 401
        response = await http.get("/providers", headers={"Authorization": "Bearer key-alice"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["failures"], body["window_s"], body["cooldown_s"]) == (5, 60.0, 30.0)
    views = {p["model"]: p for p in body["providers"]}
    steady, opened = views["openai/steady"], views["openai/failing"]
    assert (steady["state"], steady["recent_failures"], steady["transitions"]) == (
        "closed",
        0,
        [],
    )
    assert opened["provider"] == "openai"
    assert (opened["state"], opened["recent_failures"]) == ("open", 2)
    assert opened["opened_at"] and opened["next_probe_at"] > opened["opened_at"]
    assert "HTTP 503" in opened["last_error"]
    (transition,) = opened["transitions"]
    assert (transition["from_state"], transition["to_state"]) == ("closed", "open")
    assert "opened after 2 failures within 60s" in transition["reason"]
    assert "scripted/test" not in views  # the scripted provider is not guarded
