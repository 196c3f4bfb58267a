"""One trace per task, exported through the Langfuse SDK to a local OTLP receiver.

A two-subtask task with a tool call; the worker is replaced mid-task (the new one replays the
task's history). The trace must hold the span tree task → plan / subtask → agent iteration →
LLM call / tool call, once each, with GenAI attributes whose tokens and cost equal the task
state's, and no secret.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import math
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import structlog
import uvicorn
from opentelemetry import trace
from prometheus_client import REGISTRY
from temporalio.testing import WorkflowEnvironment

from mahsm import tracing
from mahsm.api.main import create_app
from mahsm.contracts.task import SubtaskStatus, TaskRequest, TaskState, TaskStatus
from mahsm.devstack.process import free_port
from mahsm.logging import configure_logging
from mahsm.queues import tasks_queue
from mahsm.temporal_client import connect
from mahsm.workflows.task_workflow import TaskWorkflow
from tests.engine_harness import AGGREGATE, plan_rule, running_workers, scripted_settings
from tests.observability.api_tasks import ONE_TOOL_CALL_PLAN, SCENARIO
from tests.observability.conftest import CANARIES, LANGFUSE_PUBLIC, LANGFUSE_SECRET
from tests.observability.otlp_receiver import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.timeout(120)

DESCRIPTION = f"Traced task: add numbers, my key is {CANARIES['OPENAI_API_KEY']} (do not leak)"


def scenario() -> dict[str, Any]:
    subtasks = [
        {
            "id": "alpha",
            "description": "Alpha: compute 6*7 with the calculator",
            "required_capabilities": ["data_analysis"],
        },
        {
            "id": "beta",
            "description": "Beta: report the result",
            "required_capabilities": ["data_analysis"],
            "depends_on": ["alpha"],
        },
    ]
    calculate = {"name": "calculator", "arguments": {"expression": "6*7"}}
    return {
        "rules": [
            plan_rule("Traced task", subtasks),
            {
                "purpose": "agent_step",
                "subtask": "alpha",
                "after_tool": False,
                "respond": {"tool_calls": [calculate]},
            },
            {
                "purpose": "agent_step",
                "subtask": "alpha",
                "respond": {"content": "alpha={last_tool_result}"},
            },
            {
                "purpose": "agent_step",
                "subtask": "beta",
                "latency_ms": 1500,
                "respond": {"content": "beta done"},
            },
            AGGREGATE,
        ]
    }


def by_id(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    return {s.span_id: s for s in spans}


def parent(span: ReceivedSpan, spans: list[ReceivedSpan]) -> ReceivedSpan:
    return by_id(spans)[span.parent_span_id]


async def test_one_trace_per_task_with_the_span_tree_usage_and_no_secret_after_a_restart(
    otlp_receiver: OtlpReceiver,
    canary_env: list[str],
    temporal_env: WorkflowEnvironment,
    db_pool: asyncpg.Pool,
    data_dir: Path,
) -> None:
    settings = scripted_settings(data_dir, scenario())
    client = await connect(settings, address=temporal_env.client.service_client.config.target_host)
    assert client.config()["plugins"], "a tracing process's client carries the Temporal plugin"
    task_id = f"task-{uuid.uuid4()}"
    request = TaskRequest(description=DESCRIPTION, user_id="alice")
    async with running_workers(client, db_pool, settings):
        with trace.get_tracer("mahsm.tests").start_as_current_span("submit") as submit:
            handle = await client.start_workflow(
                TaskWorkflow.run, request, id=task_id, task_queue=tasks_queue(settings.queue_prefix)
            )
        trace_id = format(submit.get_span_context().trace_id, "032x")
        # Stop the worker once alpha is done and beta's LLM call is in flight.
        for _ in range(300):
            state = await handle.query(TaskWorkflow.state)
            statuses = {s.subtask.id: s.result.status for s in state.subtasks}
            if statuses.get("alpha") == SubtaskStatus.COMPLETED:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"alpha did not complete: {state}")
        await asyncio.sleep(0.5)
    async with running_workers(client, db_pool, settings):  # a new worker: replays the history
        final: TaskState = await handle.result()
    assert final.status == TaskStatus.COMPLETED
    assert tracing.current().flush(10)

    spans = otlp_receiver.trace(trace_id)
    names = Counter(s.name for s in spans)
    # Nothing exported twice: not by the replay, not by anything else.
    assert len({s.span_id for s in spans}) == len(spans), names
    workflow_spans = [s for s in spans if s.scope == "mahsm.workflows"]
    assert Counter(s.name for s in workflow_spans) == {
        "task": 1,
        "plan": 1,
        "subtask alpha": 1,
        "subtask beta": 1,
        "agent iteration 1": 2,  # alpha's and beta's
        "agent iteration 2": 1,  # alpha's, after its tool call
        "aggregate": 1,
    }, names

    # The tree: submit → task → plan / subtasks / aggregate → iterations → calls.
    (task,) = [s for s in spans if s.name == "task"]
    assert parent(task, spans).name == "submit"
    for name in ("plan", "subtask alpha", "subtask beta", "aggregate"):
        (span,) = [s for s in spans if s.name == name]
        assert parent(span, spans) is task, name
    llm = [s for s in spans if s.name.startswith("llm ")]
    answered = [s for s in llm if not s.error]
    assert {parent(s, spans).name for s in answered} == {
        "plan",
        "aggregate",
        "agent iteration 1",
        "agent iteration 2",
    }
    for s in answered:
        if s.attributes["mahsm.llm.purpose"] == "agent_step":
            owner = parent(parent(s, spans), spans)
            assert owner.name == f"subtask {s.attributes['mahsm.subtask_id']}"
    (tool,) = [s for s in spans if s.name == "tool calculator"]
    iteration = parent(tool, spans)
    assert iteration.name == "agent iteration 1"
    assert parent(iteration, spans).name == "subtask alpha"
    assert tool.attributes["gen_ai.tool.name"] == "calculator"
    assert "42" in tool.attributes["langfuse.observation.output"]

    # GenAI attributes; tokens and cost add up to the task state's usage.
    for s in answered:
        attributes = s.attributes
        assert attributes["gen_ai.provider.name"] == "scripted"
        assert attributes["langfuse.observation.model.name"] == "scripted/test"
        assert attributes["gen_ai.request.model"] == "test"
        assert attributes["langfuse.observation.type"] == "generation"
        assert attributes["mahsm.llm.attempt"] >= 1
        assert attributes["gen_ai.response.finish_reasons"]
        assert attributes["mahsm.latency_ms"] >= 0
        assert (
            json.loads(attributes["langfuse.observation.usage_details"])["input"]
            == (attributes["gen_ai.usage.input_tokens"])
        )
        assert attributes["mahsm.task_id"] == task_id
    assert sum(s.attributes["gen_ai.usage.input_tokens"] for s in answered) == (
        final.usage.input_tokens
    )
    assert sum(s.attributes["gen_ai.usage.output_tokens"] for s in answered) == (
        final.usage.output_tokens
    )
    assert math.isclose(
        sum(s.attributes["mahsm.llm.cost_usd"] for s in answered), final.usage.cost_usd
    )
    assert task.attributes["mahsm.usage.input_tokens"] == final.usage.input_tokens
    assert task.attributes["mahsm.task.status"] == "completed"
    # Langfuse's trace fields: named after the task, its user, its session.
    assert task.attributes["session.id"] == task_id
    assert task.attributes["user.id"] == "alice"
    assert task.attributes["langfuse.trace.name"].startswith("Traced task: add numbers")
    # The projection records the task's trace id (the dashboard's link to Langfuse).
    stored = await db_pool.fetchval("SELECT trace_id FROM tasks WHERE id = $1", task_id)
    assert stored == trace_id

    # Langfuse's authentication: the project's keys, as HTTP Basic.
    token = base64.b64encode(f"{LANGFUSE_PUBLIC}:{LANGFUSE_SECRET}".encode()).decode()
    assert set(otlp_receiver.auth_headers) == {f"Basic {token}"}

    # No secret in any span: canaries redacted from the trace name and the prompts.
    assert "[REDACTED]" in task.attributes["langfuse.trace.name"]
    for body in otlp_receiver.bodies:
        for canary in canary_env:
            assert canary.encode() not in body


async def test_a_failing_exporter_never_fails_a_task_and_its_dropped_spans_are_counted(
    otlp_receiver: OtlpReceiver,
    temporal_env: WorkflowEnvironment,
    db_pool: asyncpg.Pool,
    data_dir: Path,
) -> None:
    settings = scripted_settings(data_dir, scenario())
    client = await connect(settings, address=temporal_env.client.service_client.config.target_host)
    stats = tracing.current().stats
    assert tracing.current().flush(10)
    dropped_before = stats.dropped
    metric_before = REGISTRY.get_sample_value("mahsm_trace_spans_dropped_total") or 0.0
    otlp_receiver.failing = True  # Langfuse's ingestion answers 503
    try:
        async with running_workers(client, db_pool, settings):
            final: TaskState = await client.execute_workflow(
                TaskWorkflow.run,
                TaskRequest(description=DESCRIPTION),
                id=f"task-{uuid.uuid4()}",
                task_queue=tasks_queue(settings.queue_prefix),
            )
        assert final.status == TaskStatus.COMPLETED
        tracing.current().flush(15)  # the exporter gives up on each batch after its timeout
    finally:
        otlp_receiver.failing = False
    assert otlp_receiver.rejected > 0
    dropped = stats.dropped - dropped_before
    assert dropped >= 12, "every span of the task was dropped and counted"
    metric = REGISTRY.get_sample_value("mahsm_trace_spans_dropped_total")
    assert metric is not None and metric - metric_before == dropped


def test_log_lines_carry_the_trace_id_of_their_span(otlp_receiver: OtlpReceiver) -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", stream=stream, force=True)
    try:
        with trace.get_tracer("mahsm.tests").start_as_current_span("request") as span:
            structlog.get_logger("test").info("inside", task_id="task-1")
            logging.getLogger("stdlib").warning("stdlib inside")
        structlog.get_logger("test").info("outside")
    finally:
        configure_logging(force=True)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    expected = format(span.get_span_context().trace_id, "032x")
    inside = [line for line in lines if "inside" in line["event"]]
    assert len(inside) == 2
    assert all(line["trace_id"] == expected for line in inside)
    assert inside[0]["task_id"] == "task-1"
    (outside,) = [line for line in lines if line["event"] == "outside"]
    assert "trace_id" not in outside


async def test_a_task_submitted_over_http_is_traced_from_the_request(
    otlp_receiver: OtlpReceiver,
    temporal_env: WorkflowEnvironment,
    db_pool: asyncpg.Pool,
    database_url: str,
    data_dir: Path,
) -> None:
    address = temporal_env.client.service_client.config.target_host
    settings = scripted_settings(
        data_dir,
        SCENARIO,
        temporal_address=address,
        database_url=database_url,
        api_keys={"trace-key-alice-0001": "alice"},
    )
    client = await connect(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None)
    )
    async with running_workers(client, db_pool, settings):
        serving = asyncio.create_task(server.serve())
        try:
            while not server.started:
                await asyncio.sleep(0.05)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                answer = await http.post(
                    "/tasks",
                    json={"description": "Traced over HTTP: 6*7", "plan": ONE_TOOL_CALL_PLAN},
                    headers={"Authorization": "Bearer trace-key-alice-0001"},
                )
                assert answer.status_code == 202, answer.text
                task_id = answer.json()["task_id"]
                state = await client.get_workflow_handle(task_id, result_type=TaskState).result()
                assert state.status == TaskStatus.COMPLETED
        finally:
            server.should_exit = True
            await serving
    assert tracing.current().flush(10)
    (task,) = [
        s
        for s in otlp_receiver.spans
        if s.name == "task" and s.attributes.get("session.id") == task_id
    ]
    spans = otlp_receiver.trace(task.trace_id)
    request = parent(task, spans)
    assert request.name == "HTTP POST /tasks"
    assert request.scope == "mahsm.api"
    assert request.attributes["http.response.status_code"] == 202
    assert task.attributes["user.id"] == "alice"
    assert {s.name for s in spans} >= {
        "subtask calc",
        "tool calculator",
        "llm agent_step scripted/test",
    }


async def test_trace_content_false_keeps_prompts_and_results_off_the_spans(
    otlp_receiver: OtlpReceiver,
    temporal_env: WorkflowEnvironment,
    db_pool: asyncpg.Pool,
    data_dir: Path,
) -> None:
    settings = scripted_settings(data_dir, SCENARIO, trace_content=False)
    client = await connect(settings, address=temporal_env.client.service_client.config.target_host)
    task_id = f"task-{uuid.uuid4()}"
    async with running_workers(client, db_pool, settings):
        state = await client.execute_workflow(
            TaskWorkflow.run,
            TaskRequest(description="Contentless trace: compute 6*7", plan=ONE_TOOL_CALL_PLAN),
            id=task_id,
            task_queue=tasks_queue(settings.queue_prefix),
        )
    assert state.status == TaskStatus.COMPLETED
    assert tracing.current().flush(10)
    calls = [
        s
        for s in otlp_receiver.spans
        if s.attributes.get("mahsm.task_id") == task_id and s.scope == "mahsm.activities"
    ]
    assert {s.name for s in calls} == {"llm agent_step scripted/test", "tool calculator"}
    for span in calls:
        assert "langfuse.observation.input" not in span.attributes
        assert "langfuse.observation.output" not in span.attributes
    assert sum(s.attributes.get("gen_ai.usage.input_tokens", 0) for s in calls) == (
        state.usage.input_tokens
    )
