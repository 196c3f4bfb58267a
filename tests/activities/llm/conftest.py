"""Fixtures of the LLM-layer tests: a fake OpenAI/Anthropic HTTP server and settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mahsm.settings import Settings
from tests.activities.llm.llm_fake_server import FakeLLMServer, running_llm_server

_PROVIDER_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "MAHSM_SCRIPTED_CALL_LOG",
    "MAHSM_SCRIPTED_SCENARIO",
    "MAHSM_PRICES",
    "MAHSM_LLM_TIMEOUT_S",
)


@pytest.fixture(scope="session")
def fake_llm_server() -> Iterator[FakeLLMServer]:
    """One fake provider server for the session."""
    with running_llm_server() as server:
        yield server


@pytest.fixture
def llm_server(fake_llm_server: FakeLLMServer) -> FakeLLMServer:
    """The fake server with no queued replies and no recorded requests."""
    fake_llm_server.reset()
    return fake_llm_server


@pytest.fixture(autouse=True)
def _clean_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's real keys or endpoints."""
    for name in _PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def llm_settings(data_dir: Path) -> Settings:
    """Settings with no .env influence and short LLM timeouts."""
    return Settings(_env_file=None, data_dir=data_dir, llm_timeout_s=10.0)
