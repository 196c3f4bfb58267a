"""The API on a real engine: in-process workers, real Temporal dev server, real Postgres.

`api_stack(scenario, api_keys=...)` yields an `ApiStack` with an httpx client talking to the
app in-process (ASGI) and, on demand, a real uvicorn server on a free loopback port (for SSE).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from temporalio.client import Client, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from mahsm.api.main import create_app
from mahsm.devstack.process import free_port
from mahsm.settings import Settings, load_settings
from tests.engine_harness import Engine, running_engine

TERMINAL = {"completed", "failed", "cancelled", "timed_out"}


def subtask(sid: str, description: str, *deps: str, cap: str = "data_analysis") -> dict[str, Any]:
    return {
        "id": sid,
        "description": description,
        "depends_on": list(deps),
        "required_capabilities": [cap],
    }


def api_settings(env: WorkflowEnvironment, database_url: str, **overrides: Any) -> Settings:
    return load_settings(
        _env_file=None,
        temporal_address=env.client.service_client.config.target_host,
        database_url=database_url,
        temporal_ui_url="http://ui.example:8233",
        **overrides,
    )


@asynccontextmanager
async def asgi_client(app: FastAPI, **headers: str) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client calling `app` in-process, with its lifespan running."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api", headers=headers, timeout=30
        ) as client:
            yield client


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on a free loopback port; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=15)


@dataclass
class ApiStack:
    """A running engine plus the API in front of it."""

    engine: Engine
    app: FastAPI
    http: httpx.AsyncClient

    async def wait_until(
        self,
        task_id: str,
        predicate: Callable[[dict[str, Any]], object],
        *,
        timeout_s: float = 30,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Poll `GET /tasks/{task_id}` until `predicate(body)` is true.

        A transient 503 (a backend briefly too busy under load) is retried until the deadline;
        any other status fails at once.
        """
        deadline = asyncio.get_running_loop().time() + timeout_s
        last = "no answer yet"
        while True:
            response = await self.http.get(f"/tasks/{task_id}", headers=headers)
            if response.status_code == 200:
                body: dict[str, Any] = response.json()
                if predicate(body):
                    return body
                last = str(body)
            else:
                assert response.status_code == 503, response.text
                last = f"503 {response.text}"
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"condition never reached: {last}")
            await asyncio.sleep(0.05)

    async def wait_status(self, task_id: str, statuses: set[str]) -> dict[str, Any]:
        """Poll `GET /tasks/{task_id}` until the task's status is one of `statuses`."""
        return await self.wait_until(task_id, lambda body: body["task"]["status"] in statuses)

    async def wait_closed(self, task_id: str) -> None:
        """Wait until the task's workflow has closed (its final state is then in Postgres)."""
        handle = self.engine.client.get_workflow_handle(task_id)
        with contextlib.suppress(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), timeout=30)

    async def wait_row(self, task_id: str, status: str, *, timeout_s: float = 30.0) -> None:
        """Wait until Postgres has the task with `status`."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            row = await self.engine.task_row(task_id)
            if row is not None and row["status"] == status:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"row of {task_id} never reached {status}: {row}")
            await asyncio.sleep(0.1)


StackFactory = Callable[..., AbstractAsyncContextManager[ApiStack]]


@pytest.fixture
def api_stack(
    temporal_env: WorkflowEnvironment,
    temporal_client: Client,
    db_pool: asyncpg.Pool,
    database_url: str,
    data_dir: Path,
) -> StackFactory:
    """`async with api_stack(scenario, api_keys={...}, headers={...}) as stack:`."""

    @asynccontextmanager
    async def make(
        scenario: dict[str, Any],
        *,
        api_keys: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        **engine_options: Any,
    ) -> AsyncIterator[ApiStack]:
        async with AsyncExitStack() as stack:
            engine = await stack.enter_async_context(
                running_engine(
                    client=temporal_client,
                    pool=db_pool,
                    data_dir=data_dir,
                    scenario=scenario,
                    **engine_options,
                )
            )
            settings = api_settings(
                temporal_env,
                database_url,
                queue_prefix=engine.settings.queue_prefix,
                api_keys=api_keys or {},
            )
            app = create_app(settings)
            http = await stack.enter_async_context(asgi_client(app, **(headers or {})))
            yield ApiStack(engine=engine, app=app, http=http)

    return make
