"""Experiment branches are traced: one trace per branch, with the experiment and config ids;
the task projection records each task's trace id."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from mahsm import tracing
from mahsm.experiments.models import ExperimentRequest, ExperimentState
from mahsm.queues import tasks_queue
from mahsm.temporal_client import connect
from mahsm.workflows.experiment_workflow import ExperimentWorkflow
from tests.engine_harness import running_workers, scripted_settings
from tests.observability.otlp_receiver import OtlpReceiver
from tests.observability.test_trace import parent

pytestmark = pytest.mark.timeout(120)

PIPELINE = {
    "name": "qa",
    "inputs": {"q": "str", "mode": "str"},
    "steps": [{"name": "answer", "kind": "llm", "prompt": "Question: {q} mode={mode}"}],
}
SCENARIO = {"rules": [{"purpose": "any", "match": "mode=", "respond": {"content": "42"}}]}


async def test_each_branch_is_a_trace_carrying_experiment_and_config_ids(
    otlp_receiver: OtlpReceiver,
    temporal_env: WorkflowEnvironment,
    db_pool: asyncpg.Pool,
    data_dir: Path,
) -> None:
    settings = scripted_settings(data_dir, SCENARIO)
    client = await connect(settings, address=temporal_env.client.service_client.config.target_host)
    request = ExperimentRequest.model_validate(
        {
            "name": "traced",
            "target": {"pipeline": PIPELINE},
            "inputs": {"q": "x"},
            "grid": {"inputs.mode": ["a", "b"]},
            "user_id": "alice",
            "mlflow": False,
        }
    )
    experiment_id = f"experiment-{uuid.uuid4()}"
    async with running_workers(client, db_pool, settings):
        state: ExperimentState = await client.execute_workflow(
            ExperimentWorkflow.run,
            request,
            id=experiment_id,
            task_queue=tasks_queue(settings.queue_prefix),
        )
    assert tracing.current().flush(10)
    branches = [
        s
        for s in otlp_receiver.spans
        if s.name == "experiment branch" and s.attributes["mahsm.experiment_id"] == experiment_id
    ]
    assert sorted(s.attributes["mahsm.config_id"] for s in branches) == sorted(state.config_ids)
    assert len({s.trace_id for s in branches}) == 2  # a trace of its own per branch
    for branch in branches:
        assert branch.parent_span_id == ""
        assert branch.attributes["session.id"] == experiment_id
        assert branch.attributes["user.id"] == "alice"
        (task,) = [s for s in otlp_receiver.trace(branch.trace_id) if s.name == "task"]
        assert parent(task, otlp_receiver.trace(branch.trace_id)) == branch
        config_id = branch.attributes["mahsm.config_id"]
        assert task.attributes["mahsm.task_id"].endswith(f".{config_id}")
        # The projection recorded the trace id (the dashboard's Langfuse link).
        recorded = await db_pool.fetchval(
            "SELECT trace_id FROM tasks WHERE id = $1", task.attributes["mahsm.task_id"]
        )
        assert recorded == branch.trace_id
