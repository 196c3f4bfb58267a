from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client

from tests.engine_harness import Engine, running_engine


@pytest.fixture
def engine_factory(
    temporal_client: Client, db_pool: asyncpg.Pool, data_dir: Path
) -> Callable[..., AbstractAsyncContextManager[Engine]]:
    """`async with engine_factory(scenario, **settings) as engine:` runs real workers."""

    def make(scenario: dict[str, Any], **kwargs: Any) -> AbstractAsyncContextManager[Engine]:
        return running_engine(
            client=temporal_client, pool=db_pool, data_dir=data_dir, scenario=scenario, **kwargs
        )

    return make
