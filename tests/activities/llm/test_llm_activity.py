"""The `llm_complete` activity: blobs, cost, heartbeats, timeout and error conversion."""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from mahsm.activities.blobs import BlobStore
from mahsm.activities.llm.activity import LLMActivities
from mahsm.activities.llm.registry import ProviderRegistry
from mahsm.contracts.llm import ChatMessage, LLMPurpose, LLMRequest
from mahsm.settings import Settings
from tests.activities.llm.llm_plugin import EchoProvider


def _request(model: str, *messages: ChatMessage, task_id: str | None = None) -> LLMRequest:
    return LLMRequest(
        model=model,
        purpose=LLMPurpose.AGENT_STEP,
        messages=list(messages) or [ChatMessage(role="user", content="hello world")],
        task_id=task_id,
    )


def _env(
    *,
    attempt: int = 1,
    heartbeat_timeout: timedelta | None = None,
    start_to_close_timeout: timedelta | None = None,
) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info,
        attempt=attempt,
        heartbeat_timeout=heartbeat_timeout,
        start_to_close_timeout=start_to_close_timeout,
        workflow_id="wf-activity-test",
        activity_id="3",
    )
    return env


def _with_echo(settings: Settings, provider: EchoProvider) -> LLMActivities:
    registry = ProviderRegistry(settings, load_entry_points=False)
    registry.register("echo", lambda _settings: provider)
    return LLMActivities(settings=settings, blobs=None, registry=registry)


def _scripted(settings: Settings, scenario: Path) -> Settings:
    """`settings` with `scenario` used for every `scripted/<name>` (MAHSM_SCRIPTED_SCENARIO)."""
    return settings.model_copy(update={"scripted_scenario": scenario})


async def test_cost_uses_scenario_prices_and_settings_override(
    llm_settings: Settings, tmp_path: Path
) -> None:
    scenario = tmp_path / "priced.yaml"
    scenario.write_text("prices: {input_per_mtok: 2.0, output_per_mtok: 4.0}\n")
    settings = _scripted(llm_settings, scenario)
    llm = LLMActivities(settings=settings, blobs=None)
    reply = await _env().run(llm.complete, _request("scripted/test"))
    expected = (reply.usage.input_tokens * 2.0 + reply.usage.output_tokens * 4.0) / 1e6
    assert reply.usage.input_tokens == 2
    assert reply.usage.cost_usd == pytest.approx(expected)

    overridden = settings.model_copy(update={"prices": {"scripted/*": (10.0, 0.0)}})
    llm = LLMActivities(settings=overridden, blobs=None)
    reply = await _env().run(llm.complete, _request("scripted/test"))
    assert reply.usage.cost_usd == pytest.approx(2 * 10.0 / 1e6)


async def test_cost_of_a_plugin_provider_uses_settings_prices(llm_settings: Settings) -> None:
    settings = llm_settings.model_copy(update={"prices": {"echo/m": (1.0, 0.5)}})
    reply = await _env().run(_with_echo(settings, EchoProvider()).complete, _request("echo/m"))
    assert reply.content == "m: hello world"
    assert reply.usage.cost_usd == pytest.approx(1.0 + 1.0)  # 1 Mtok * $1 + 2 Mtok * $0.5


async def test_context_carries_attempt_and_ids(llm_settings: Settings) -> None:
    provider = EchoProvider()
    await _env(attempt=4).run(
        _with_echo(llm_settings, provider).complete, _request("echo/m", task_id="task-9")
    )
    (context,) = provider.contexts
    assert (context.attempt, context.workflow_id, context.activity_id, context.task_id) == (
        4,
        "wf-activity-test",
        "3",
        "task-9",
    )


async def test_heartbeats_while_a_slow_call_runs(llm_settings: Settings) -> None:
    beats: list[tuple[object, ...]] = []
    env = _env(heartbeat_timeout=timedelta(milliseconds=300))
    env.on_heartbeat = lambda *details: beats.append(details)
    reply = await env.run(
        _with_echo(llm_settings, EchoProvider(delay_s=0.45)).complete, _request("echo/m")
    )
    assert reply.content == "m: hello world"
    assert len(beats) >= 2


async def test_heartbeats_every_2_s_during_a_long_call_whatever_the_timeout(
    llm_settings: Settings,
) -> None:
    """A worker killed mid-call is noticed within a heartbeat timeout of ~10 s: the activity
    beats every 2 s while the provider works, even when the workflow allows 60 s."""
    for timeout in (None, timedelta(seconds=60)):
        beats: list[float] = []
        env = _env(heartbeat_timeout=timeout)
        env.on_heartbeat = lambda *_details, beats=beats: beats.append(time.monotonic())
        started = time.monotonic()
        await env.run(
            _with_echo(llm_settings, EchoProvider(delay_s=4.5)).complete, _request("echo/m")
        )
        ended = time.monotonic()
        moments = [started, *beats, ended]
        gaps = [b - a for a, b in zip(moments, moments[1:], strict=False)]
        assert beats and all(gap < 3.0 for gap in gaps), (timeout, gaps)


async def test_the_call_ends_before_start_to_close_with_an_error_naming_the_model(
    llm_settings: Settings,
) -> None:
    """Our own timeout fires first, so the last error says which model and what to check
    (Temporal's own start-to-close timeout names neither)."""
    env = _env(start_to_close_timeout=timedelta(seconds=3))
    with pytest.raises(ApplicationError) as raised:
        await env.run(
            _with_echo(llm_settings, EchoProvider(delay_s=8)).complete, _request("echo/m")
        )
    error = raised.value
    assert error.type == "LLMTimeoutError" and not error.non_retryable
    assert error.message == (
        "echo/m: no answer within 1.5 s; check that the provider answers, or raise"
        " MAHSM_LLM_TIMEOUT_S"
    )


async def test_llm_timeout_is_a_retryable_timeout(llm_settings: Settings) -> None:
    settings = llm_settings.model_copy(update={"llm_timeout_s": 0.2})
    with pytest.raises(ApplicationError) as raised:
        await _env().run(_with_echo(settings, EchoProvider(delay_s=5)).complete, _request("echo/m"))
    assert raised.value.type == "LLMTimeoutError"
    assert not raised.value.non_retryable


async def test_retryable_error_carries_retry_after_as_next_retry_delay(
    llm_settings: Settings, tmp_path: Path
) -> None:
    scenario = tmp_path / "limited.yaml"
    scenario.write_text("faults: {rate: 1.0, kinds: [429], retry_after_s: 2.5}\n")
    llm = LLMActivities(settings=_scripted(llm_settings, scenario), blobs=None)
    with pytest.raises(ApplicationError) as raised:
        await _env().run(llm.complete, _request("scripted/test"))
    error = raised.value
    assert error.type == "LLMRateLimitError"
    assert not error.non_retryable
    assert error.next_retry_delay == timedelta(seconds=2.5)
    assert error.details == ({"kind": "rate_limit", "status": 429, "retry_after": 2.5},)


@pytest.mark.parametrize(
    ("model", "error_type"),
    [
        ("nosuch/model", "LLMNotFoundError"),
        ("scripted/no-such-scenario", "LLMNotFoundError"),
        ("openai/gpt-4o-mini", "LLMAuthError"),  # no OPENAI_API_KEY in the environment
    ],
)
async def test_configuration_errors_are_non_retryable(
    llm_settings: Settings, model: str, error_type: str
) -> None:
    llm = LLMActivities(settings=llm_settings, blobs=None)
    with pytest.raises(ApplicationError) as raised:
        await _env().run(llm.complete, _request(model))
    assert raised.value.type == error_type
    assert raised.value.non_retryable
    assert raised.value.next_retry_delay is None
    assert "Fix:" in raised.value.message


@pytest.mark.parametrize(
    "model",
    [
        "scripted/{tmp}/secret.yaml",
        "scripted//{tmp}/secret.yaml",
        "scripted/../../../../../../../../..{tmp}/secret.yaml",
        "scripted/../../etc/passwd",
        "scripted//etc/passwd",
    ],
)
@pytest.mark.parametrize("override", [False, True])
async def test_a_path_as_scripted_model_is_refused_without_leaking_the_file(
    llm_settings: Settings, tmp_path: Path, model: str, override: bool
) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text("hunter2-SECRET\n")  # parsed, it would be an invalid scenario
    settings = _scripted(llm_settings, secret) if override else llm_settings
    llm = LLMActivities(settings=settings, blobs=None)
    with pytest.raises(ApplicationError) as raised:
        await _env().run(llm.complete, _request(model.format(tmp=tmp_path)))
    error = raised.value
    assert error.type == "LLMBadRequestError"
    assert error.non_retryable and error.next_retry_delay is None
    assert "not a plain scenario name" in error.message and "Fix:" in error.message
    assert "hunter2" not in error.message and "root:" not in error.message
    assert "input_value" not in error.message


async def test_an_invalid_operator_scenario_fails_without_its_contents(
    llm_settings: Settings, tmp_path: Path
) -> None:
    scenario = tmp_path / "operator.yaml"
    scenario.write_text("latency_ms: hunter2-SECRET\n")
    llm = LLMActivities(settings=_scripted(llm_settings, scenario), blobs=None)
    with pytest.raises(ApplicationError) as raised:
        await _env().run(llm.complete, _request("scripted/test"))
    error = raised.value
    assert error.type == "LLMBadRequestError" and error.non_retryable
    assert "'operator.yaml'" in error.message and "latency_ms" in error.message
    assert "hunter2" not in error.message and "input_value" not in error.message


async def test_content_ref_without_blob_store_is_non_retryable(llm_settings: Settings) -> None:
    from mahsm.contracts.task import BlobRef

    ref = BlobRef(blob_id="abc", size_bytes=3, sha256="abc")
    llm = LLMActivities(settings=llm_settings, blobs=None)
    with pytest.raises(ApplicationError) as raised:
        await _env().run(
            llm.complete, _request("scripted/bench", ChatMessage(role="user", content_ref=ref))
        )
    assert raised.value.type == "LLMBadRequestError" and raised.value.non_retryable


async def test_blob_references_are_resolved_before_the_provider(
    llm_settings: Settings, db_pool: asyncpg.Pool
) -> None:
    blobs = BlobStore(db_pool, threshold_bytes=1024)
    big = "word " * 2000
    inline, ref = await blobs.offload_text(big)
    assert inline is None and ref is not None
    provider = EchoProvider()
    registry = ProviderRegistry(llm_settings, load_entry_points=False)
    registry.register("echo", lambda _settings: provider)
    llm = LLMActivities(settings=llm_settings, blobs=blobs, registry=registry)
    reply = await _env().run(
        llm.complete,
        _request(
            "echo/m",
            ChatMessage(role="system", content="be brief"),
            ChatMessage(role="user", content_ref=ref),
        ),
    )
    (seen,) = provider.requests
    assert seen.messages[1].content == big and seen.messages[1].content_ref is None
    # the answer is as large: it comes back by claim check too
    assert reply.content is None and reply.content_ref is not None
    assert await blobs.get_text(reply.content_ref) == "m: " + big
