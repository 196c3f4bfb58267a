"""The worker's secrets never leave `llm_complete`: not in answers, errors, history or logs.

Canary keys go through the real OpenAI and Anthropic SDKs to the local fake server, which
echoes the credentials it received back in answers and errors, like providers do.
"""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from mahsm.contracts.llm import ChatMessage, LLMPurpose, LLMRequest, LLMResponse
from mahsm.settings import Settings
from tests.activities.llm.llm_fake_server import (
    AUTHORIZATION,
    FakeLLMServer,
    Reply,
    anthropic_error,
    anthropic_message,
    openai_completion,
    openai_error,
)
from tests.activities.llm.one_llm_call import run_one_call

OPENAI_KEY = "sk-canary-openai-5f1e2d3c4b5a69788796a5b4"
ANTHROPIC_KEY = "canary-anthropic-no-known-prefix-77aa"  # caught by value only
OTHER = {
    "LANGFUSE_SECRET_KEY": "lf-canary-secret-2b4d6f8h",
    "MAHSM_API_KEYS": "apikey-canary-31415926:alice",
    "MAHSM_DATABASE_URL": "postgresql://mahsm:pw-canary-27182818@db:5432/mahsm",
    "BILLING_SERVICE_TOKEN": "tok-canary-16180339",
}
CANARIES = [
    OPENAI_KEY,
    ANTHROPIC_KEY,
    "lf-canary-secret-2b4d6f8h",
    "apikey-canary-31415926",
    "pw-canary-27182818",
    "tok-canary-16180339",
]
LEAKY = "leaked: " + " ".join(CANARIES[2:])


@pytest.fixture
def canaries(monkeypatch: pytest.MonkeyPatch, llm_server: FakeLLMServer) -> FakeLLMServer:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", llm_server.openai_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", llm_server.url)
    for name, value in OTHER.items():
        monkeypatch.setenv(name, value)
    return llm_server


async def _run(
    env: WorkflowEnvironment, settings: Settings, task_queue: str, model: str
) -> tuple[Any, str]:
    request = LLMRequest(
        model=model,
        purpose=LLMPurpose.AGENT_STEP,
        messages=[ChatMessage(role="user", content="hello")],
    )
    return await run_one_call(env, settings, task_queue, request, id_prefix="llm-secrets")


async def _history_text(env: WorkflowEnvironment, workflow_id: str) -> str:
    history = await env.client.get_workflow_handle(workflow_id).fetch_history()
    return history.to_json()


def _assert_clean(*texts: str) -> None:
    for text in texts:
        for canary in CANARIES:
            assert canary not in text


async def test_a_provider_echoing_the_key_in_its_answer_puts_no_secret_in_the_result(
    temporal_env: WorkflowEnvironment,
    task_queue: str,
    llm_settings: Settings,
    canaries: FakeLLMServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    canaries.queue(
        Reply(
            200,
            openai_completion(
                content=f"you sent Authorization: {AUTHORIZATION}; {LEAKY}",
                tool_calls=[("c1", "lookup", f'{{"q": "{AUTHORIZATION}"}}')],
                finish_reason="tool_calls",
            ),
        )
    )
    response, workflow_id = await _run(temporal_env, llm_settings, task_queue, "openai/gpt-4o")

    assert isinstance(response, LLMResponse)
    assert canaries.received[0].headers["authorization"] == f"Bearer {OPENAI_KEY}"  # it was sent
    assert response.content == "you sent Authorization: Bearer [REDACTED]; leaked: " + " ".join(
        ["[REDACTED]"] * 4
    )
    assert response.tool_calls[0].arguments == '{"q": "Bearer [REDACTED]"}'
    _assert_clean(await _history_text(temporal_env, workflow_id), caplog.text)


@pytest.mark.parametrize(
    ("model", "reply", "check"),
    [
        (
            "openai/gpt-4o-mini",
            # no word boundary before the key, and the 32-hex key of another service
            Reply(401, openai_error(f"invalid_key_{OPENAI_KEY}; {LEAKY}")),
            "check OPENAI_API_KEY",
        ),
        (
            "anthropic/claude-test",
            Reply(401, anthropic_error(f"invalid credentials {AUTHORIZATION}; {LEAKY}")),
            "check ANTHROPIC_API_KEY",
        ),
    ],
)
async def test_provider_errors_quoting_the_key_reach_neither_history_nor_logs(
    model: str,
    reply: Reply,
    check: str,
    temporal_env: WorkflowEnvironment,
    task_queue: str,
    llm_settings: Settings,
    canaries: FakeLLMServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    canaries.queue(reply)
    failure, workflow_id = await _run(temporal_env, llm_settings, task_queue, model)

    assert isinstance(failure, WorkflowFailureError)
    message = failure.cause.cause.message
    assert message.startswith(f"{model}: ") and check in message  # names model and the fix
    assert "[REDACTED]" in message
    _assert_clean(message, await _history_text(temporal_env, workflow_id), caplog.text)


async def test_anthropic_answer_echoing_the_key_is_redacted(
    temporal_env: WorkflowEnvironment,
    task_queue: str,
    llm_settings: Settings,
    canaries: FakeLLMServer,
) -> None:
    canaries.queue(
        Reply(200, anthropic_message([{"type": "text", "text": f"key={AUTHORIZATION} ok"}]))
    )
    response, workflow_id = await _run(
        temporal_env, llm_settings, task_queue, "anthropic/claude-test"
    )
    assert canaries.received[0].headers["authorization"] == f"Bearer {ANTHROPIC_KEY}"
    assert response.content == "key=Bearer [REDACTED] ok"
    _assert_clean(await _history_text(temporal_env, workflow_id))


async def test_after_retries_the_last_error_names_provider_model_and_what_to_check(
    temporal_env: WorkflowEnvironment,
    task_queue: str,
    llm_settings: Settings,
    canaries: FakeLLMServer,
) -> None:
    canaries.queue(*[Reply(503, openai_error("overloaded", "server_error"))] * 5)
    failure, _ = await _run(temporal_env, llm_settings, task_queue, "openai/gpt-4o-mini")

    assert isinstance(failure, WorkflowFailureError)
    message = failure.cause.cause.message
    assert message == (
        "openai/gpt-4o-mini: openai returned HTTP 503 (server_error): overloaded;"
        " check the server at OPENAI_BASE_URL (or the provider's status page); the call is"
        " retried"
    )
    assert len(canaries.received) == 5
