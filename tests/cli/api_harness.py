"""A real MAHSM API for client and CLI tests: in-process workers, the app served by uvicorn.

Real Temporal dev server, real Postgres, the bundled `demo.yaml` scenario by default.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import uvicorn
import yaml
from temporalio.testing import WorkflowEnvironment

from mahsm.api.main import create_app
from mahsm.devstack.process import free_port
from mahsm.settings import Settings, load_settings
from tests.engine_harness import Engine, running_engine

DEMO_SCENARIO: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parents[2] / "mahsm/scenarios/demo.yaml").read_text()
)
FACTORIAL = "What is the factorial of 10? Use the calculator."
SALES = "Analyze our quarterly sales: collect the figures, compute the growth, write a report."
INVENTORY = "Build the inventory dashboard from the legacy feed and the supplier list."
UI_URL = "http://ui.example:8233"


@dataclass
class ServedApi:
    """The engine and the URL of the API in front of it."""

    engine: Engine
    url: str
    settings: Settings


@asynccontextmanager
async def served_api(
    *,
    temporal_env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    database_url: str,
    data_dir: Path,
    scenario: dict[str, Any] | None = None,
    api_keys: dict[str, str] | None = None,
) -> AsyncIterator[ServedApi]:
    """Workers plus the API on a free loopback port, for the duration of the block."""
    async with running_engine(
        client=temporal_env.client,
        pool=pool,
        data_dir=data_dir,
        scenario=scenario or DEMO_SCENARIO,
    ) as engine:
        settings = load_settings(
            _env_file=None,
            temporal_address=temporal_env.client.service_client.config.target_host,
            database_url=database_url,
            temporal_ui_url=UI_URL,
            queue_prefix=engine.settings.queue_prefix,
            api_keys=api_keys or {},
        )
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings), host="127.0.0.1", port=port, log_config=None, lifespan="on"
            )
        )
        serving = asyncio.create_task(server.serve())
        try:
            for _ in range(200):
                if server.started:
                    break
                if serving.done():
                    serving.result()
                await asyncio.sleep(0.05)
            yield ServedApi(engine=engine, url=f"http://127.0.0.1:{port}", settings=settings)
        finally:
            server.should_exit = True
            await asyncio.wait_for(serving, timeout=15)
