"""`/metrics` of the API (and of a worker, same registry here) moves by the right amounts."""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.testing import WorkflowEnvironment

from mahsm.contracts.task import TaskRequest
from mahsm.devstack.process import free_port
from mahsm.metrics import serve_metrics
from mahsm.queues import tasks_queue
from mahsm.temporal_client import connect
from mahsm.temporal_metrics import TemporalMetrics
from mahsm.workflows.task_workflow import TaskWorkflow
from tests.cli.api_harness import served_api
from tests.engine_harness import running_workers, scripted_settings
from tests.observability.api_tasks import ONE_TOOL_CALL_PLAN, SCENARIO, run_task

pytestmark = pytest.mark.timeout(90)

KEY = "metrics-key-alice-0001"
MODEL = "scripted/test"


async def scrape(http: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = await http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def delta(
    before: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    after: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    name: str,
    **labels: str,
) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in after, f"{name}{labels} is not exposed"
    return after[key] - before.get(key, 0.0)


async def test_metrics_count_the_calls_tokens_cost_and_status_of_a_known_task(
    temporal_env: WorkflowEnvironment, db_pool: asyncpg.Pool, database_url: str, data_dir: Path
) -> None:
    async with served_api(
        temporal_env=temporal_env,
        pool=db_pool,
        database_url=database_url,
        data_dir=data_dir,
        scenario=SCENARIO,
        api_keys={KEY: "alice"},
    ) as served:
        async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
            before = await scrape(http)
            state = await run_task(http, served.engine, "Metrics: compute six times seven", KEY)
            after = await scrape(http)

    usage = state["usage"]
    calls = dict(model=MODEL, purpose="agent_step")
    assert delta(before, after, "mahsm_llm_calls_total", **calls, outcome="ok") == 2
    assert delta(before, after, "mahsm_llm_latency_seconds_count", model=MODEL) == 2
    tokens_in = delta(before, after, "mahsm_llm_tokens_total", model=MODEL, direction="input")
    tokens_out = delta(before, after, "mahsm_llm_tokens_total", model=MODEL, direction="output")
    assert (tokens_in, tokens_out) == (usage["input_tokens"], usage["output_tokens"])
    cost = delta(before, after, "mahsm_llm_cost_usd_total", model=MODEL)
    assert math.isclose(cost, usage["cost_usd"], abs_tol=1e-12)
    assert delta(before, after, "mahsm_tool_calls_total", tool="calculator", outcome="ok") == 1
    assert delta(before, after, "mahsm_tool_latency_seconds_count", tool="calculator") == 1
    assert delta(before, after, "mahsm_tasks_finished_total", status="completed") == 1
    assert ("mahsm_trace_spans_dropped_total", ()) in after


async def test_temporal_sdk_metrics_land_in_the_same_registry(
    temporal_env: WorkflowEnvironment, db_pool: asyncpg.Pool, data_dir: Path
) -> None:
    registry = CollectorRegistry()
    bridge = TemporalMetrics(registry)
    settings = scripted_settings(data_dir, SCENARIO)
    client = await connect(
        settings,
        address=temporal_env.client.service_client.config.target_host,
        runtime=bridge.runtime,
    )
    async with running_workers(client, db_pool, settings):
        await client.execute_workflow(
            TaskWorkflow.run,
            TaskRequest(description="Temporal metrics: compute 6*7", plan=ONE_TOOL_CALL_PLAN),
            id=f"task-{uuid.uuid4()}",
            task_queue=tasks_queue(settings.queue_prefix),
        )
    assert bridge.drain() >= 0
    text = generate_latest(registry).decode()
    assert "temporal_workflow_completed" in text, text[:2000]
    assert "temporal_activity_execution_latency" in text


def test_a_worker_serves_the_registry_on_its_metrics_port() -> None:
    port = free_port()
    serve_metrics(port, host="127.0.0.1")
    answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert answer.status_code == 200
    names = {family.name for family in text_string_to_metric_families(answer.text)}
    assert {"mahsm_llm_calls", "mahsm_tasks_finished", "mahsm_trace_spans_dropped"} <= names
