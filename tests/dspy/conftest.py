from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.activities.llm.llm_fake_server import FakeLLMServer, running_llm_server


@pytest.fixture(scope="session")
def fake_llm_server() -> Iterator[FakeLLMServer]:
    """One fake OpenAI-protocol server for the session."""
    with running_llm_server() as server:
        yield server


@pytest.fixture
def openai_server(fake_llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> FakeLLMServer:
    """The fake server, empty, with the openai provider pointed at it."""
    fake_llm_server.reset()
    fake_llm_server.use_as_openai(monkeypatch)
    return fake_llm_server
