"""`GET /health` and the error format, against the real Temporal dev server and Postgres."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from mahsm.api.__main__ import bind_refusal
from mahsm.api.deps import ApiError, DbPoolDep, SettingsDep, TemporalClientDep
from mahsm.api.main import create_app
from mahsm.devstack.postgres import EmbeddedPostgres
from mahsm.devstack.process import free_port
from mahsm.settings import Settings, load_settings


def _settings(*, temporal: str, database_url: str) -> Settings:
    return load_settings(_env_file=None, temporal_address=temporal, database_url=database_url)


@asynccontextmanager
async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


def _address(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


def _nothing_listens() -> str:
    return f"127.0.0.1:{free_port()}"


async def test_health_is_ok_when_temporal_and_postgres_answer(
    temporal_env: WorkflowEnvironment, database_url: str
) -> None:
    app = create_app(_settings(temporal=_address(temporal_env), database_url=database_url))
    async with _client(app) as client:
        response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "temporal": {"status": "ok"},
        "database": {"status": "ok"},
    }


async def test_health_is_degraded_and_the_app_still_starts_when_both_are_down() -> None:
    settings = _settings(
        temporal=_nothing_listens(),
        database_url=f"postgresql://postgres:hunter2@{_nothing_listens()}/mahsm",
    )
    async with _client(create_app(settings)) as client:
        response = await client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert (
        body["temporal"]["status"] == "error"
        and "Connection refused" in (body["temporal"]["detail"])
    )
    assert body["database"]["status"] == "error" and body["database"]["detail"]
    assert "hunter2" not in response.text


async def test_database_connection_is_retried_on_next_request(
    postgres_server: EmbeddedPostgres, temporal_env: WorkflowEnvironment
) -> None:
    name = f"late_{uuid.uuid4().hex[:8]}"
    settings = _settings(
        temporal=_address(temporal_env), database_url=postgres_server.admin_url(name)
    )
    async with _client(create_app(settings)) as client:
        first = await client.get("/health")
        assert first.status_code == 503
        assert first.json()["database"]["status"] == "error"
        assert first.json()["temporal"] == {"status": "ok"}

        postgres_server.create_database(name)  # the database appears while the API runs
        second = await client.get("/health")
        assert second.status_code == 200, second.text
        assert second.json()["database"] == {"status": "ok"}


async def test_errors_are_json_with_code_message_and_details(
    temporal_env: WorkflowEnvironment, database_url: str
) -> None:
    app = create_app(_settings(temporal=_address(temporal_env), database_url=database_url))

    @app.get("/probe/{number}")
    async def probe(
        number: int, settings: SettingsDep, client: TemporalClientDep, pool: DbPoolDep
    ) -> dict[str, object]:
        if number == 0:
            raise ApiError(409, code="probe_conflict", message="zero is taken", details={"n": 0})
        return {
            "namespace": settings.temporal_namespace,
            "identity": bool(client.identity),
            "one": await pool.fetchval("SELECT 1"),
        }

    async with _client(app) as client:
        ok = await client.get("/probe/7")
        missing = await client.get("/no-such-route")
        invalid = await client.get("/probe/seven")
        conflict = await client.get("/probe/0")

    assert ok.status_code == 200
    assert ok.json() == {"namespace": "default", "identity": True, "one": 1}
    assert missing.status_code == 404
    assert missing.json() == {"code": "not_found", "message": "Not Found", "details": None}
    assert invalid.status_code == 422
    assert invalid.json()["code"] == "validation_error"
    assert "path.number" in invalid.json()["message"]
    assert isinstance(invalid.json()["details"], list)
    assert conflict.status_code == 409
    assert conflict.json() == {
        "code": "probe_conflict",
        "message": "zero is taken",
        "details": {"n": 0},
    }


async def test_dependencies_answer_503_while_a_backend_is_down() -> None:
    app = create_app(
        _settings(
            temporal=_nothing_listens(),
            database_url=f"postgresql://postgres@{_nothing_listens()}/mahsm",
        )
    )

    @app.get("/needs-temporal")
    async def needs_temporal(client: TemporalClientDep) -> str:
        return client.namespace

    async with _client(app) as client:
        response = await client.get("/needs-temporal")
    assert response.status_code == 503
    assert response.json()["code"] == "temporal_unavailable"


@pytest.mark.parametrize(
    ("host", "keys", "refused"),
    [
        ("127.0.0.1", "", False),
        ("localhost", "", False),
        ("::1", "", False),
        ("0.0.0.0", "", True),
        ("0.0.0.0", "k1:alice", False),
    ],
)
def test_public_bind_requires_api_keys(host: str, keys: str, refused: bool) -> None:
    settings = load_settings(_env_file=None, api_host=host, api_keys=keys)
    assert (bind_refusal(settings) is not None) == refused


def test_python_m_api_refuses_a_public_host_without_keys_with_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mahsm.api"],
        env={"MAHSM_API_HOST": "0.0.0.0", "MAHSM_API_KEYS": "", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Refusing to serve the API on 0.0.0.0" in result.stderr
    assert "MAHSM_API_KEYS" in result.stderr
