"""`llm_complete` on a real Temporal worker: retry-after honoured, 401 not retried.

The OpenAI and Anthropic SDKs talk to a local fake server; Temporal (the dev server) owns
retrying, since the SDKs' own retries are off.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment

from mahsm.activities.llm.errors import LLMCallError
from mahsm.activities.llm.provider import CallContext
from mahsm.activities.llm.scripted import ScriptedProvider
from mahsm.contracts.llm import ChatMessage, LLMPurpose, LLMRequest
from mahsm.settings import Settings
from tests.activities.llm.llm_fake_server import (
    FakeLLMServer,
    Reply,
    anthropic_error,
    anthropic_message,
    openai_completion,
    openai_error,
)
from tests.activities.llm.one_llm_call import activity_attempts, run_one_call


def _openai(server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> str:
    server.use_as_openai(monkeypatch)
    return "openai/gpt-4o-mini"


def _anthropic(server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0123456789")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    return "anthropic/claude-test-model"


PROVIDERS: dict[str, dict[str, Any]] = {
    "openai": {
        "setup": _openai,
        "ok": openai_completion(content="hello there", prompt_tokens=1000, completion_tokens=500),
        "rate_limited": lambda: Reply(
            429, openai_error("slow down", "rate_limit"), {"retry-after": "1"}
        ),
        "unauthorized": lambda: Reply(
            401, openai_error("Incorrect API key provided: sk-live-secret99")
        ),
        "price": (0.15, 0.60),
    },
    "anthropic": {
        "setup": _anthropic,
        "ok": anthropic_message(
            [{"type": "text", "text": "hello there"}], input_tokens=1000, output_tokens=500
        ),
        "rate_limited": lambda: Reply(
            429, anthropic_error("slow down", "rate_limit_error"), {"retry-after-ms": "1000"}
        ),
        "unauthorized": lambda: Reply(
            401, anthropic_error("invalid x-api-key", "authentication_error")
        ),
        "price": (0.0, 0.0),
    },
}


def _request(model: str, text: str = "say hello") -> LLMRequest:
    return LLMRequest(
        model=model,
        purpose=LLMPurpose.AGENT_STEP,
        messages=[ChatMessage(role="user", content=text)],
        task_id="task-llm-test",
    )


async def _run(
    env: WorkflowEnvironment, settings: Settings, task_queue: str, request: LLMRequest | str
) -> tuple[Any, str]:
    if isinstance(request, str):
        request = _request(request)
    return await run_one_call(env, settings, task_queue, request)


@pytest.mark.parametrize("name", sorted(PROVIDERS))
async def test_429_with_retry_after_is_retried_by_temporal_then_succeeds(
    name: str,
    temporal_env: WorkflowEnvironment,
    task_queue: str,
    llm_settings: Settings,
    llm_server: FakeLLMServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = PROVIDERS[name]
    setup: Callable[[FakeLLMServer, pytest.MonkeyPatch], str] = spec["setup"]
    model = setup(llm_server, monkeypatch)
    llm_server.queue(spec["rate_limited"](), Reply(200, spec["ok"]))

    response, workflow_id = await _run(temporal_env, llm_settings, task_queue, model)

    assert response.content == "hello there"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (1000, 500)
    price_in, price_out = spec["price"]
    assert response.usage.cost_usd == pytest.approx((1000 * price_in + 500 * price_out) / 1e6)
    assert len(llm_server.received) == 2
    # Temporal waited for the server's retry-after (1 s), not the 50 ms retry interval.
    first, second = llm_server.received
    assert second.at - first.at >= 0.9
    assert await activity_attempts(temporal_env, workflow_id) == [2]


@pytest.mark.parametrize("name", sorted(PROVIDERS))
async def test_401_fails_at_once_without_retry(
    name: str,
    temporal_env: WorkflowEnvironment,
    task_queue: str,
    llm_settings: Settings,
    llm_server: FakeLLMServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spec = PROVIDERS[name]
    model = spec["setup"](llm_server, monkeypatch)
    llm_server.queue(spec["unauthorized"](), Reply(200, spec["ok"]))

    failure, workflow_id = await _run(temporal_env, llm_settings, task_queue, model)

    assert isinstance(failure, WorkflowFailureError)
    activity_error = failure.cause
    assert isinstance(activity_error, ActivityError)
    cause = activity_error.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "LLMAuthError"
    assert cause.non_retryable
    assert f"check {name.upper()}_API_KEY" in cause.message
    assert len(llm_server.received) == 1
    assert await activity_attempts(temporal_env, workflow_id) == [1]
    # no secret reached the failure or the logs
    for secret in ("sk-live-secret99", "sk-test-key-0123456789", "sk-ant-test-0123456789"):
        assert secret not in cause.message
        assert secret not in caplog.text


async def test_scripted_fault_is_retried_and_the_call_log_shows_one_completion(
    temporal_env: WorkflowEnvironment,
    task_queue: str,
    llm_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scenario = tmp_path / "flaky.yaml"
    scenario.write_text("seed: 5\nfaults: {rate: 0.5, kinds: [500]}\n")
    llm_settings = llm_settings.model_copy(update={"scripted_scenario": scenario})
    model = "scripted/test"
    probe = ScriptedProvider(settings=llm_settings)

    async def fails_then_succeeds(request: LLMRequest) -> bool:
        try:
            await probe.complete(request, model="test", context=CallContext(attempt=1))
            return False
        except LLMCallError:
            pass
        await probe.complete(request, model="test", context=CallContext(attempt=2))
        return True

    # pick a request whose first attempt faults and whose second does not (deterministic)
    for index in range(100):
        request = _request(model, f"say hello {index}")
        try:
            if await fails_then_succeeds(request):
                break
        except LLMCallError:
            continue
    else:
        pytest.fail("no request found whose first attempt faults")

    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("MAHSM_SCRIPTED_CALL_LOG", str(log))
    response, workflow_id = await _run(temporal_env, llm_settings, task_queue, request)

    assert response.content == f"Done: say hello {index}"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(line["event"], line["attempt"]) for line in lines] == [
        ("start", 1),
        ("fault", 1),
        ("start", 2),
        ("done", 2),
    ]
    assert {line["workflow_id"] for line in lines} == {workflow_id}
    assert len({line["activity_id"] for line in lines}) == 1
    assert len({line["digest"] for line in lines}) == 1
