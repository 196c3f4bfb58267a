"""`llm_complete` on a real Temporal worker with live text: never on the call's path.

A publisher whose Postgres is down still lets every call complete with its full answer;
calls whose output middleware may rewrite the answer are not streamed; `stream_tokens=false`
streams nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from mahsm.activities.llm.activity import LLMActivities
from mahsm.activities.llm.middleware.base import Middleware
from mahsm.activities.llm.middleware.registry import MiddlewareRegistry
from mahsm.activities.llm.token_stream import TokenPublisher
from mahsm.contracts.llm import ChatMessage, LLMPurpose, LLMRequest, LLMResponse
from mahsm.contracts.stream import TokenChunk
from mahsm.devstack.process import free_port
from mahsm.settings import Settings
from tests.activities.llm.llm_test_workflow import OneLLMCallWorkflow

ANSWER = "a long answer that arrives in several pieces while the call runs"


class Capture(TokenPublisher):
    """A publisher that keeps what it is given (the transport is tested elsewhere)."""

    def __init__(self) -> None:
        super().__init__(pool=None)  # type: ignore[arg-type]
        self.chunks: list[TokenChunk] = []

    def publish(self, payloads: list[str]) -> None:
        self.chunks += [TokenChunk.model_validate_json(p.partition("\n")[2]) for p in payloads]


class Shout(Middleware):
    """An output middleware: it rewrites the answer, so the raw text must not stream."""

    name = "shout"

    def after_llm_call(self, request: LLMRequest, response: LLMResponse) -> LLMResponse:
        return response.model_copy(update={"content": (response.content or "").upper()})


@pytest.fixture
def settings(llm_settings: Settings, tmp_path: Path) -> Settings:
    scenario = tmp_path / "slow.yaml"
    scenario.write_text(
        "rules:\n  - purpose: agent_step\n    latency_ms: 600\n"
        f"    respond: {{content: {ANSWER!r}}}\n"
    )
    return llm_settings.model_copy(update={"scripted_scenario": scenario})


@pytest_asyncio.fixture
async def dead_pool() -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(
        f"postgresql://nobody@127.0.0.1:{free_port()}/none", min_size=0, max_size=1
    )
    yield pool
    await pool.close()


async def _call(
    env: WorkflowEnvironment, task_queue: str, llm: LLMActivities, **fields: object
) -> LLMResponse:
    request = LLMRequest(
        model="scripted/test",
        purpose=LLMPurpose.AGENT_STEP,
        messages=[ChatMessage(role="user", content="answer at length")],
        task_id="task-live",
        subtask_id="s1",
        **fields,  # type: ignore[arg-type]
    )
    async with Worker(
        env.client, task_queue=task_queue, workflows=[OneLLMCallWorkflow], activities=[llm.complete]
    ):
        return await env.client.execute_workflow(
            OneLLMCallWorkflow.run,
            request,
            id=f"llm-live-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )


async def test_a_down_transport_never_fails_the_call(
    temporal_env: WorkflowEnvironment, task_queue: str, settings: Settings, dead_pool: asyncpg.Pool
) -> None:
    publisher = TokenPublisher(dead_pool)
    llm = LLMActivities(settings=settings, blobs=None, tokens=publisher)
    response = await _call(temporal_env, task_queue, llm)
    await publisher.flushed()
    assert response.content == ANSWER
    assert publisher.dropped > 0 and publisher.sent == 0


async def test_the_text_streams_tagged_with_the_call_and_attempt(
    temporal_env: WorkflowEnvironment, task_queue: str, settings: Settings
) -> None:
    capture = Capture()
    llm = LLMActivities(settings=settings, blobs=None, tokens=capture)
    response = await _call(temporal_env, task_queue, llm)
    assert response.content == ANSWER
    assert len(capture.chunks) >= 3
    assert "".join(c.text for c in capture.chunks) == ANSWER
    first = capture.chunks[0]
    assert (first.task_id, first.subtask_id, first.attempt) == ("task-live", "s1", 1)
    assert first.call == f"{first.workflow_id}/{first.activity_id}"


async def test_calls_with_output_middleware_or_streaming_off_are_not_streamed(
    temporal_env: WorkflowEnvironment, task_queue: str, settings: Settings
) -> None:
    capture = Capture()
    registry = MiddlewareRegistry(load_entry_points=False)
    registry.register(Shout)
    llm = LLMActivities(settings=settings, blobs=None, tokens=capture, middleware=registry)
    response = await _call(temporal_env, task_queue, llm, middleware=["shout"])
    assert response.content == ANSWER.upper()
    assert capture.chunks == []

    off = settings.model_copy(update={"stream_tokens": False})
    llm = LLMActivities(settings=off, blobs=None, tokens=capture)
    assert (await _call(temporal_env, task_queue, llm)).content == ANSWER
    assert capture.chunks == []
