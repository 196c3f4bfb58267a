"""`MahsmClient.run_pipeline` and the registry calls, REST and direct-Temporal, on a real engine
running the shipped example on the bundled demo scenario."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from temporalio.client import Client

from mahsm.client import InvalidRequest, MahsmClient, MahsmError, SyncMahsmClient, TaskNotFound
from mahsm.contracts.task import TaskStatus
from mahsm.pipelines.builder import PipelineBuilder, llm, tool
from mahsm.pipelines.files import load_pipeline
from tests.cli.api_harness import DEMO_SCENARIO, ServedApi
from tests.engine_harness import Engine, running_engine

EXAMPLE = Path(__file__).parents[2] / "examples/pipelines/ticket_triage.yaml"
INPUTS = {"ticket": "The app crashes when I open settings.", "customer": "Ada"}


def echo_pipeline(name: str = "echo") -> Any:
    """Two llm steps (the scripted default echoes the prompt) and a parallel pair."""
    return (
        PipelineBuilder(name, description="Echo a word through three steps")
        .input("word", "str")
        .llm("first", "say {word}")
        .parallel(
            "pair",
            [llm("left", "L {first}"), tool("sum", "calculator", {"expression": "2+3"})],
        )
        .output("left", "{pair.left}")
        .output("sum", "{pair.sum}")
        .build()
    )


@pytest_asyncio.fixture(loop_scope="session")
async def rest(api: ServedApi) -> AsyncIterator[MahsmClient]:
    async with MahsmClient.rest(api.url) as client:
        yield client


async def test_rest_runs_a_file_a_pipeline_and_a_registered_name(rest: MahsmClient) -> None:
    from_file = await rest.run_pipeline(EXAMPLE, INPUTS, wait=True, timeout_s=60)
    built = await rest.run_pipeline(echo_pipeline(), {"word": "hi"}, wait=True, timeout_s=60)
    registered = await rest.register_pipeline(EXAMPLE)
    by_name = await rest.run_pipeline("ticket-triage", INPUTS, wait=True, timeout_s=60)
    task_id = await rest.run_pipeline(f"ticket-triage@{registered.version}", INPUTS)

    assert from_file.status == TaskStatus.COMPLETED, from_file.error
    assert from_file.outputs is not None and from_file.outputs["category"] == "bug"
    assert from_file.pipeline == "ticket-triage@1"
    classify = from_file.subtask("classify")
    assert classify.subtask.kind == "llm"
    assert classify.result.value == {"category": "bug", "urgent": False}
    assert built.status == TaskStatus.COMPLETED, built.error
    assert built.outputs == {"left": "L say hi", "sum": "5"}
    assert built.description == "Echo a word through three steps"
    assert by_name.outputs == from_file.outputs
    assert task_id.startswith("task-")
    page = await rest.list_pipelines(limit=100)
    assert "ticket-triage" in [p.name for p in page.pipelines]
    assert (await rest.get_pipeline("ticket-triage")).definition == load_pipeline(EXAMPLE)


async def test_rest_refuses_invalid_runs_naming_step_and_field(rest: MahsmClient) -> None:
    broken = echo_pipeline().model_copy(deep=True)
    broken.steps[0].prompt = "say {wrod}"  # type: ignore[union-attr]
    with pytest.raises(InvalidRequest) as invalid:
        await rest.run_pipeline(broken, {"word": "hi"})
    assert ["body", "pipeline", "steps", "first", "prompt"] in [
        d["loc"] for d in invalid.value.details
    ]
    with pytest.raises(InvalidRequest) as bad_inputs:
        await rest.run_pipeline(echo_pipeline(), {"word": 3})
    assert "body.inputs.word: expected str, got int" in bad_inputs.value.message
    with pytest.raises(TaskNotFound):
        await rest.get_pipeline("never-registered")
    with pytest.raises(InvalidRequest) as not_a_name:
        await rest.run_pipeline("Not A Pipeline", {})
    assert "neither a pipeline file" in not_a_name.value.message


async def test_sync_client_runs_a_pipeline(api: ServedApi) -> None:
    def run() -> Any:  # in a thread: the API runs on this test's loop
        with SyncMahsmClient.rest(api.url) as client:
            return client.run_pipeline(echo_pipeline(), {"word": "sync"}, wait=True)

    state = await asyncio.to_thread(run)
    assert not isinstance(state, str)
    assert state.outputs == {"left": "L say sync", "sum": "5"}


@pytest_asyncio.fixture(loop_scope="session")
async def engine(
    temporal_client: Client, db_pool: asyncpg.Pool, data_dir: Path
) -> AsyncIterator[Engine]:
    async with running_engine(
        client=temporal_client, pool=db_pool, data_dir=data_dir, scenario=DEMO_SCENARIO
    ) as running:
        yield running


async def test_temporal_mode_runs_definitions_and_checks_them_first(engine: Engine) -> None:
    client = MahsmClient.from_temporal_client(
        engine.client, queue_prefix=engine.settings.queue_prefix
    )
    state = await client.run_pipeline(EXAMPLE, INPUTS, wait=True, timeout_s=60)
    assert state.status == TaskStatus.COMPLETED, state.error
    assert state.outputs is not None and state.outputs["reply"].startswith("Dear Ada,")

    with pytest.raises(InvalidRequest) as invalid:
        await client.run_pipeline(EXAMPLE, {"ticket": "no customer"})
    assert "pipeline.inputs.customer: missing" in invalid.value.message
    with pytest.raises(MahsmError) as by_name:
        await client.run_pipeline("ticket-triage", INPUTS)
    assert by_name.value.code == "unsupported" and "REST API" in by_name.value.message
