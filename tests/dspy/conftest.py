from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.activities.llm.llm_fake_server import FakeLLMServer


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
