"""Circuit breakers per provider/model, shared by every worker through Postgres.

Real Temporal and Postgres; the openai provider talks to a fake server that answers per
model, so a test can count the requests each model received, or that none reached it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from mahsm.activities.llm.breaker import BreakerConfig, CircuitBreakers
from mahsm.activities.llm.errors import classify_status
from mahsm.contracts.pipeline import Pipeline
from mahsm.contracts.task import TaskRequest, TaskState, TaskStatus
from mahsm.devstack.process import ManagedProcess
from mahsm.queues import tasks_queue
from mahsm.workflows.task_workflow import TaskWorkflow
from tests.activities.llm.llm_fake_server import OPENAI_TEST_KEY, FakeLLMServer, running_llm_server
from tests.engine_harness import running_engine

pytestmark = pytest.mark.timeout(240)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLMServer]:
    with running_llm_server(answer_unscripted=True) as running:
        running.use_as_openai(monkeypatch)
        yield running


def one_llm_step(models: list[str]) -> TaskRequest:
    pipeline = Pipeline.model_validate(
        {
            "name": "routed",
            "steps": [{"name": "draft", "kind": "llm", "model": models, "prompt": "Draft it"}],
            "outputs": {"reply": "{draft}"},
        }
    )
    return TaskRequest(description="Run pipeline routed", pipeline=pipeline)


@pytest.fixture
def engine_with(temporal_client: Client, db_pool: asyncpg.Pool, data_dir: Path) -> Any:
    """`async with engine_with(**settings) as engine:` runs real workers for one test."""

    def make(**settings: Any) -> Any:
        return running_engine(
            client=temporal_client,
            pool=db_pool,
            data_dir=data_dir,
            scenario={"rules": []},
            fallback_attempts=2,
            **settings,
        )

    return make


async def notes(pool: asyncpg.Pool, task_id: str) -> list[str]:
    rows = await pool.fetch(
        "SELECT data FROM task_events WHERE task_id = $1 AND kind = 'note' ORDER BY seq", task_id
    )
    return [(r["data"] or {}).get("message", "") for r in rows]


async def breaker(pool: asyncpg.Pool, model: str) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM provider_breakers WHERE model = $1", model)
    assert row is not None, f"no breaker row for {model}"
    return row


async def transitions(pool: asyncpg.Pool, model: str) -> list[tuple[str, str]]:
    rows = await pool.fetch(
        "SELECT from_state, to_state FROM provider_breaker_transitions WHERE model = $1"
        " ORDER BY id",
        model,
    )
    return [(r["from_state"], r["to_state"]) for r in rows]


def first_failure_type(events: list[HistoryEvent], activity_id: str) -> str:
    """`ApplicationError.type` of the first failed attempt of `activity_id`."""
    scheduled = {
        e.event_id
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_id == activity_id
    }
    for e in events:
        if e.HasField("activity_task_failed_event_attributes"):
            attributes = e.activity_task_failed_event_attributes
            if attributes.scheduled_event_id in scheduled:
                return str(attributes.failure.application_failure_info.type)
    raise AssertionError(f"{activity_id} did not fail")


async def wait_until_probe_due(pool: asyncpg.Pool, model: str) -> None:
    for _ in range(300):
        if await pool.fetchval(
            "SELECT next_probe_at <= now() FROM provider_breakers WHERE model = $1", model
        ):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the cool-down did not end")


async def test_opens_across_two_tasks_rejects_fast_and_closes_after_a_probe(
    engine_with: Any, db_pool: asyncpg.Pool, server: FakeLLMServer
) -> None:
    flaky, chain = "openai/flaky-a", ["openai/flaky-a", "openai/backup"]
    server.script("flaky-a", then=503)
    async with engine_with(breaker_failures=4, breaker_cooldown_s=8) as engine:
        # Two concurrent tasks, two attempts each: the fourth failure opens the circuit.
        first = await asyncio.gather(*(engine.start(one_llm_step(chain)) for _ in range(2)))
        states: list[TaskState] = await asyncio.gather(*(h.result() for h in first))
        assert [s.status for s in states] == [TaskStatus.COMPLETED] * 2
        assert {s.subtask("draft").result.model for s in states} == {"openai/backup"}
        assert server.calls("flaky-a") == 4
        row = await breaker(db_pool, flaky)
        assert row["state"] == "open" and row["next_probe_at"] > row["opened_at"]
        opened = [
            n for h in first for n in await notes(db_pool, h.id) if n.startswith("circuit for")
        ]
        assert len(opened) == 1, opened
        assert "opened after 4 failures within 60s" in opened[0]

        # While open, a call is rejected before any request reaches the provider.
        third = await engine.start(one_llm_step(chain))
        state = await third.result()
        assert state.status == TaskStatus.COMPLETED
        assert state.subtask("draft").result.model == "openai/backup"
        assert server.calls("flaky-a") == 4
        log = await notes(db_pool, third.id)
        assert any(f"circuit for {flaky} is open" in n for n in log), log
        history = await third.fetch_history()
        assert first_failure_type(list(history.events), "draft/llm") == "CircuitOpen"

        # After the cool-down one probe goes through; it succeeds and closes the circuit.
        server.script("flaky-a", then=200)
        await wait_until_probe_due(db_pool, flaky)
        fourth = await engine.start(one_llm_step(chain))
        state = await fourth.result()
        assert state.subtask("draft").result.model == flaky
        assert server.calls("flaky-a") == 5
        log = await notes(db_pool, fourth.id)
        assert any("half-open: one probe call let through" in n for n in log), log
        assert f"circuit for {flaky} closed after a successful probe" in log

    assert (await breaker(db_pool, flaky))["state"] == "closed"
    assert await transitions(db_pool, flaky) == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


async def test_a_failed_probe_opens_the_circuit_again(
    engine_with: Any, db_pool: asyncpg.Pool, server: FakeLLMServer
) -> None:
    flaky, chain = "openai/flaky-c", ["openai/flaky-c", "openai/backup"]
    server.script("flaky-c", then=503)
    async with engine_with(breaker_failures=2, breaker_cooldown_s=2) as engine:
        state = await (await engine.start(one_llm_step(chain))).result()
        assert state.status == TaskStatus.COMPLETED
        await wait_until_probe_due(db_pool, flaky)
        probed = await engine.start(one_llm_step(chain))
        state = await probed.result()

    assert state.subtask("draft").result.model == "openai/backup"
    assert server.calls("flaky-c") == 3  # two failures, then one probe
    log = await notes(db_pool, probed.id)
    assert any(f"circuit for {flaky} re-opened: the probe failed" in n for n in log), log
    assert (await breaker(db_pool, flaky))["state"] == "open"
    assert await transitions(db_pool, flaky) == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
    ]


async def test_a_call_with_no_fallback_waits_for_the_probe_instead_of_failing(
    engine_with: Any, db_pool: asyncpg.Pool, server: FakeLLMServer
) -> None:
    flaky = "openai/flaky-d"
    server.script("flaky-d", 503, 503)  # then 200
    async with engine_with(breaker_failures=2, breaker_cooldown_s=6) as engine:
        handle = await engine.start(one_llm_step([flaky]))
        state = await handle.result()

    assert state.status == TaskStatus.COMPLETED, state.error
    assert state.subtask("draft").result.model == flaky
    second, probe = server.times("flaky-d")[1:]
    # The second failure opened the circuit: the next attempt waited for the cool-down (the
    # plain retry policy would have retried after 2 s) and was the probe.
    assert probe - second >= 5.0, probe - second
    assert server.calls("flaky-d") == 3
    log = await notes(db_pool, handle.id)
    assert f"circuit for {flaky} closed after a successful probe" in log, log


async def test_exactly_one_probe_among_concurrent_calls_of_two_workers(
    db_pool: asyncpg.Pool,
) -> None:
    model = "openai/flaky-e"
    config = BreakerConfig(failures=1, cooldown_s=1)
    workers = [CircuitBreakers(db_pool, config), CircuitBreakers(db_pool, config)]
    admitted = await workers[0].admit(model, has_fallback=True)
    await workers[0].failed(admitted, classify_status(503, "down", provider="openai"))
    await wait_until_probe_due(db_pool, model)

    async def call(breakers: CircuitBreakers) -> str:
        try:
            admission = await breakers.admit(model, has_fallback=True)
        except ApplicationError as error:
            assert error.type == "CircuitOpen" and error.non_retryable
            return "rejected"
        return "probe" if admission.probe else "let through"

    outcomes = await asyncio.gather(*(call(workers[i % 2]) for i in range(12)))
    assert sorted(outcomes) == ["probe"] + ["rejected"] * 11
    assert (await breaker(db_pool, model))["state"] == "half_open"


async def test_a_second_worker_process_sees_the_open_circuit(
    engine_with: Any,
    db_pool: asyncpg.Pool,
    database_url: str,
    temporal_env: WorkflowEnvironment,
    server: FakeLLMServer,
    tmp_path: Path,
) -> None:
    flaky, chain = "openai/flaky-b", ["openai/flaky-b", "openai/backup"]
    server.script("flaky-b", then=503)
    async with engine_with(breaker_failures=2, breaker_cooldown_s=600) as engine:
        state = await (await engine.start(one_llm_step(chain))).result()
        assert state.status == TaskStatus.COMPLETED
    assert (await breaker(db_pool, flaky))["state"] == "open"
    assert server.calls("flaky-b") == 2

    # Another process, its own queues, the same database: the circuit is open there too.
    prefix = f"t{uuid.uuid4().hex[:10]}"
    worker = start_worker_process(
        tmp_path, prefix=prefix, database_url=database_url, temporal_env=temporal_env,
        server=server,
    )  # fmt: skip
    try:
        await wait_ready(worker, tmp_path / "ready")
        handle: WorkflowHandle[Any, TaskState] = await temporal_env.client.start_workflow(
            TaskWorkflow.run,
            one_llm_step(chain),
            id=f"task-{uuid.uuid4()}",
            task_queue=tasks_queue(prefix),
        )
        state = await asyncio.wait_for(handle.result(), timeout=120)
        history = await handle.fetch_history()
    finally:
        worker.stop()

    assert state.status == TaskStatus.COMPLETED, state.error
    assert state.subtask("draft").result.model == "openai/backup"
    assert server.calls("flaky-b") == 2  # no request reached the open model
    started_by = {
        e.activity_task_started_event_attributes.identity
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
    }
    assert started_by and all(i.startswith(f"{worker.pid}@") for i in started_by), started_by
    assert first_failure_type(list(history.events), "draft/llm") == "CircuitOpen"
    log = await notes(db_pool, handle.id)
    assert any(f"circuit for {flaky} is open" in n for n in log), log


def start_worker_process(
    root: Path,
    *,
    prefix: str,
    database_url: str,
    temporal_env: WorkflowEnvironment,
    server: FakeLLMServer,
) -> ManagedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAHSM_")}
    env.update(
        MAHSM_DATABASE_URL=database_url,
        MAHSM_TEMPORAL_ADDRESS=temporal_env.client.service_client.config.target_host,
        MAHSM_QUEUE_PREFIX=prefix,
        MAHSM_DEFAULT_MODEL="openai/backup",
        MAHSM_DATA_DIR=str(root / "data"),
        MAHSM_READY_FILE=str(root / "ready"),
        MAHSM_FALLBACK_ATTEMPTS="2",
        MAHSM_LOG_FORMAT="json",
        MAHSM_LOG_LEVEL="WARNING",
        OPENAI_API_KEY=OPENAI_TEST_KEY,
        OPENAI_BASE_URL=server.openai_url,
        PYTHONPATH=str(REPO),
    )
    return ManagedProcess(
        "second-worker",
        [sys.executable, "-m", "mahsm.workers"],
        log_path=root / "worker.log",
        env=env,
        cwd=REPO,
    ).start()


async def wait_ready(worker: ManagedProcess, ready: Path) -> None:
    for _ in range(900):
        if ready.exists():
            return
        assert worker.running, f"worker exited early.{worker.tail()}"
        await asyncio.sleep(0.1)
    raise AssertionError(f"worker not ready.{worker.tail()}")
