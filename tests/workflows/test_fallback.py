"""Fallback chains on the engine: the openai provider against a fake server, per model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mahsm.contracts.pipeline import Pipeline
from mahsm.contracts.task import SubtaskStatus, TaskRequest, TaskStatus
from tests.activities.llm.llm_fake_server import FakeLLMServer, running_llm_server

# Breakers stay out of these tests' way (tests/activities/test_breaker.py covers them).
SETTINGS: dict[str, Any] = {"fallback_attempts": 2, "breaker_failures": 1000}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLMServer]:
    with running_llm_server(answer_unscripted=True) as running:
        running.use_as_openai(monkeypatch)
        yield running


def one_llm_step(models: list[str], **step: Any) -> TaskRequest:
    draft = {"name": "draft", "kind": "llm", "model": models, "prompt": "Draft it", **step}
    pipeline = Pipeline.model_validate(
        {
            "name": "routed",
            "steps": [draft],
            "outputs": {"reply": "{draft}"},
        }
    )
    return TaskRequest(description="Run pipeline routed", pipeline=pipeline)


async def notes(engine: Any, task_id: str) -> list[str]:
    events = await engine.events(task_id)
    return [(e["data"] or {}).get("message", "") for e in events if e["kind"] == "note"]


async def test_secondary_serves_once_the_primary_exhausts_its_retries(
    engine_factory, server: FakeLLMServer
) -> None:
    server.script("primary", then=503)
    async with engine_factory({"rules": []}, **SETTINGS) as engine:
        handle = await engine.start(one_llm_step(["openai/primary", "openai/secondary"]))
        state = await handle.result()
        history = await handle.fetch_history()
        log = await notes(engine, handle.id)
        row = (await engine.subtask_rows(handle.id))["draft"]

    assert state.status == TaskStatus.COMPLETED, state.error
    assert state.outputs == {"reply": "answer from secondary"}
    assert server.calls("primary") == 2  # fallback_attempts, then the next model
    assert server.calls("secondary") == 1
    draft = state.subtask("draft").result
    assert draft.model == "openai/secondary"  # the served model, as the response says
    assert row["model"] == "openai/secondary"
    (served,) = [n for n in log if n.startswith("served by fallback model")]
    assert "openai/secondary after openai/primary failed: retries exhausted" in served
    assert "HTTP 503" in served
    scheduled = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    by_id = {a.activity_id: a for a in scheduled}
    assert set(by_id) == {"draft/llm", "draft/llm.m1"}
    assert by_id["draft/llm"].retry_policy.maximum_attempts == 2


async def test_a_400_from_the_primary_does_not_fall_back(
    engine_factory, server: FakeLLMServer
) -> None:
    server.script("primary", then=400)
    async with engine_factory({"rules": []}, **SETTINGS) as engine:
        handle = await engine.start(one_llm_step(["openai/primary", "openai/secondary"]))
        state = await engine.wait_for(handle, lambda s: s.status.is_terminal, timeout_s=60)

    assert state.status == TaskStatus.FAILED
    draft = state.subtask("draft").result
    assert draft.status == SubtaskStatus.FAILED
    assert draft.error is not None and "HTTP 400" in draft.error, draft.error
    assert server.calls("primary") == 1  # not retried
    assert server.calls("secondary") == 0  # and not passed on


async def test_every_model_failing_names_each_model_and_why(
    engine_factory, server: FakeLLMServer
) -> None:
    server.script("primary", then=503)
    server.script("secondary", then=429)
    async with engine_factory({"rules": []}, **SETTINGS) as engine:
        handle = await engine.start(one_llm_step(["openai/primary", "openai/secondary"]))
        state = await engine.wait_for(handle, lambda s: s.status.is_terminal, timeout_s=90)
        log = await notes(engine, handle.id)

    assert state.status == TaskStatus.FAILED
    error = state.subtask("draft").result.error or ""
    assert "failed on every model of its chain" in error, error
    assert "openai/primary: retries exhausted" in error and "HTTP 503" in error
    assert "openai/secondary: retries exhausted" in error and "HTTP 429" in error
    assert (server.calls("primary"), server.calls("secondary")) == (2, 2)
    assert any(n.startswith("model openai/primary failed") for n in log), log


async def test_the_chain_shares_the_steps_time_limit(engine_factory, server: FakeLLMServer) -> None:
    server.script("primary", then=503)
    settings = {**SETTINGS, "fallback_attempts": 20}  # the primary alone outlasts the step
    async with engine_factory({"rules": []}, **settings) as engine:
        handle = await engine.start(
            one_llm_step(["openai/primary", "openai/secondary"], timeout_s=4)
        )
        state = await engine.wait_for(handle, lambda s: s.status.is_terminal, timeout_s=60)

    assert state.status == TaskStatus.FAILED
    assert state.subtask("draft").result.error == "step timed out after 4s"
    assert server.calls("primary") >= 2
    assert server.calls("secondary") == 0  # no time was left for it


async def test_an_agent_in_a_child_workflow_falls_back_too(
    engine_factory, server: FakeLLMServer
) -> None:
    server.script("primary", then=503)
    pipeline = Pipeline.model_validate(
        {
            "name": "routed-agent",
            "steps": [
                {
                    "name": "solve",
                    "kind": "agent",
                    "description": "Solve it",
                    "capabilities": ["data_analysis"],
                    "model": ["openai/primary", "openai/secondary"],
                }
            ],
            "outputs": {"answer": "{solve}"},
        }
    )
    # inline_history_events=0: every agent runs in a child AgentWorkflow from the start.
    async with engine_factory({"rules": []}, inline_history_events=0, **SETTINGS) as engine:
        handle = await engine.start(TaskRequest(description="Run routed-agent", pipeline=pipeline))
        state = await handle.result()
        child = engine.client.get_workflow_handle(f"{handle.id}.solve")
        history = await child.fetch_history()

    assert state.status == TaskStatus.COMPLETED, state.error
    assert state.outputs == {"answer": "answer from secondary"}
    assert (server.calls("primary"), server.calls("secondary")) == (2, 1)
    scheduled = [
        e for e in history.events if e.HasField("activity_task_scheduled_event_attributes")
    ]
    attempts = [
        e.activity_task_scheduled_event_attributes.retry_policy.maximum_attempts for e in scheduled
    ]
    assert attempts == [2, 2]  # the primary, then the secondary: each its own activity
    assert "(openai/secondary)" in scheduled[1].user_metadata.summary.data.decode()
