"""Large LLM answers and tool-call arguments travel by claim check, on a real worker.

Before, a 3 MB answer could not be recorded (Temporal's payload limit is 2 MB), so Temporal
retried the activity and the provider was called (and billed) again for the same answer.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from mahsm.activities.blobs import BlobStore
from mahsm.activities.llm.activity import LLMActivities
from mahsm.activities.llm.registry import ProviderRegistry
from mahsm.activities.llm.scripted import ScriptedProvider
from mahsm.activities.tools import ToolActivities, default_registry
from mahsm.contracts.llm import ChatMessage, LLMPurpose, LLMRequest
from mahsm.settings import Settings
from tests.activities.llm.llm_claim_check_workflow import (
    LargeAnswerProbe,
    LargeAnswerResult,
    LargeAnswerWorkflow,
)
from tests.activities.llm.llm_plugin import EchoProvider

THREE_MB = 3 * 1000 * 1000


async def test_a_3_mb_answer_and_3_mb_arguments_are_made_once_and_travel_by_reference(
    temporal_env: WorkflowEnvironment,
    task_queue: str,
    llm_settings: Settings,
    db_pool: asyncpg.Pool,
    tmp_path: Path,
) -> None:
    answer = "answer " + "a" * THREE_MB
    text = "b" * THREE_MB
    arguments = json.dumps({"text": text})
    call_log = tmp_path / "calls.jsonl"
    scenario = tmp_path / "large.yaml"
    scenario.write_text(  # JSON is YAML
        json.dumps(
            {
                "call_log": str(call_log),
                "rules": [
                    {
                        "purpose": "agent_step",
                        "respond": {
                            "content": answer,
                            "tool_calls": [{"name": "measure", "arguments": arguments}],
                        },
                    }
                ],
            }
        )
    )
    settings = llm_settings.model_copy(
        update={"scripted_scenario": scenario, "tool_output_max_bytes": 4096, "llm_timeout_s": 60}
    )
    blobs = BlobStore.from_settings(db_pool, settings)
    echo = EchoProvider()
    providers = ProviderRegistry(settings, load_entry_points=False)
    providers.register("echo", lambda _settings: echo)
    scripted = providers.provider("scripted")
    assert isinstance(scripted, ScriptedProvider)
    scripted.scenario("large")  # parse the 9 MB scenario now: slow YAML is not the subject
    tools = default_registry().copy()

    @tools.tool(capabilities=None)
    def measure(text: str) -> str:
        """Measure a text.

        Args:
            text: The text.
        """
        return f"{len(text)} characters"

    llm = LLMActivities(settings=settings, blobs=blobs, registry=providers)
    tool_activities = ToolActivities(pool=db_pool, settings=settings, blobs=blobs, registry=tools)
    request = LLMRequest(
        model="scripted/large",
        purpose=LLMPurpose.AGENT_STEP,
        messages=[ChatMessage(role="user", content="write a lot")],
    )
    async with Worker(
        temporal_env.client,
        task_queue=task_queue,
        workflows=[LargeAnswerWorkflow],
        activities=[llm.complete, tool_activities.execute],
    ):
        result: LargeAnswerResult = await temporal_env.client.execute_workflow(
            LargeAnswerWorkflow.run,
            LargeAnswerProbe(request=request, follow_up_model="echo/m"),
            id=f"large-answer-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )

    # The provider was called once: one start, one done, no second attempt.
    lines = [json.loads(line) for line in call_log.read_text().splitlines()]
    assert [(line["event"], line["attempt"]) for line in lines] == [("start", 1), ("done", 1)]
    # The workflow got references, not the texts.
    first = result.first
    assert first.content is None and first.content_ref is not None
    assert first.content_ref.size_bytes == len(answer)
    assert await blobs.get_text(first.content_ref) == answer
    (call,) = first.tool_calls
    assert call.arguments == "" and call.arguments_ref is not None
    assert await blobs.get_text(call.arguments_ref) == arguments
    assert first.usage.output_tokens > 0
    # The next call resolved both references before the provider saw them.
    (seen,) = echo.requests
    assistant = seen.messages[-1]
    assert assistant.content == answer and assistant.content_ref is None
    assert assistant.tool_calls[0].arguments == arguments
    assert assistant.tool_calls[0].arguments_ref is None
    assert result.follow_up.content_ref is not None  # its echo is large too
    # The tool ran on the resolved arguments.
    assert result.tool.content == f"{THREE_MB} characters" and not result.tool.is_error


async def test_without_a_blob_store_a_too_large_answer_fails_once_with_a_fix(
    temporal_env: WorkflowEnvironment,
    task_queue: str,
    llm_settings: Settings,
    tmp_path: Path,
) -> None:
    from temporalio.client import WorkflowFailureError

    from tests.activities.llm.llm_test_workflow import OneLLMCallWorkflow

    call_log = tmp_path / "calls.jsonl"
    scenario = tmp_path / "large.yaml"
    scenario.write_text(
        json.dumps({"call_log": str(call_log), "rules": [{"respond": {"raw": "c" * THREE_MB}}]})
    )
    settings = llm_settings.model_copy(update={"scripted_scenario": scenario})
    llm = LLMActivities(settings=settings, blobs=None)
    scripted = llm.registry.provider("scripted")
    assert isinstance(scripted, ScriptedProvider)
    scripted.scenario("large")  # parse the large scenario before the clock runs
    request = LLMRequest(
        model="scripted/large",
        purpose=LLMPurpose.AGENT_STEP,
        messages=[ChatMessage(role="user", content="write a lot")],
    )
    async with Worker(
        temporal_env.client,
        task_queue=task_queue,
        workflows=[OneLLMCallWorkflow],
        activities=[llm.complete],
    ):
        with pytest.raises(WorkflowFailureError) as caught:
            await temporal_env.client.execute_workflow(
                OneLLMCallWorkflow.run,
                request,
                id=f"large-answer-{uuid.uuid4().hex[:8]}",
                task_queue=task_queue,
            )
    message = str(caught.value.cause.cause)
    assert "too large to return inline" in message and "blobs=BlobStore(pool)" in message
    events = [json.loads(line)["event"] for line in call_log.read_text().splitlines()]
    assert events == ["start", "done"]  # not retried: a retry would be just as large
