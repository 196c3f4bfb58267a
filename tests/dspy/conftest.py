from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client

from tests.activities.llm.llm_fake_server import FakeLLMServer
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


@pytest.fixture(scope="session")
def fake_llm_server() -> Iterator[FakeLLMServer]:
    """One fake OpenAI-protocol server for the session."""
    server = FakeLLMServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def openai_server(fake_llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> FakeLLMServer:
    """The fake server, empty, with the openai provider pointed at it."""
    fake_llm_server.reset()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key-0123456789")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm_server.url + "/v1")
    return fake_llm_server
