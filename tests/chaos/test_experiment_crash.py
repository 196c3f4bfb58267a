"""SIGKILL the worker while a round-robin experiment serves a request: the rotation goes on
where it was, no config skipped and none served twice in a row."""

from __future__ import annotations

import asyncio

import pytest

from mahsm.experiments.models import ExperimentRequest, ServeRequest
from mahsm.queues import tasks_queue
from mahsm.workflows.experiment_workflow import ExperimentWorkflow
from tests.chaos.conftest import ChaosStack
from tests.chaos.workload import SHORT_TIMEOUTS, count, wait_for_calls

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(120)]

SCENARIO = {
    "rules": [
        {"purpose": "any", "match": "mode=slow", "latency_ms": 1500, "respond": {"content": "ok"}},
        {"purpose": "any", "match": "mode=", "respond": {"content": "ok"}},
    ]
}


def _request() -> ExperimentRequest:
    return ExperimentRequest.model_validate(
        {
            "name": "rotation",
            "strategy": "round_robin",
            "target": {
                "pipeline": {
                    "name": "echo",
                    "inputs": {"mode": "str", "n": "int"},
                    "steps": [{"name": "say", "kind": "llm", "prompt": "Say {n} mode={mode}"}],
                }
            },
            "configs": [
                {"label": "a", "inputs": {"mode": "a"}},
                {"label": "b", "inputs": {"mode": "slow"}},
                {"label": "c", "inputs": {"mode": "c"}},
            ],
            "inputs": {"n": 0},
            "mlflow": False,
        }
    )


async def test_round_robin_rotation_survives_a_worker_kill(chaos_stack: ChaosStack) -> None:
    stack = chaos_stack
    stack.worker_env = SHORT_TIMEOUTS
    await stack.start_servers(SCENARIO)
    worker = await stack.start_worker()
    client = await stack.client()
    handle = await client.start_workflow(
        ExperimentWorkflow.run,
        _request(),
        id="experiment-chaos-rotation",
        task_queue=tasks_queue(stack.prefix),
    )
    served = []
    first = await handle.execute_update(ExperimentWorkflow.serve, ServeRequest(inputs={"n": 1}))
    served.append(first.branch.config.label)
    # The second request goes to the slow config; kill the worker while its call runs.
    second = asyncio.create_task(
        handle.execute_update(ExperimentWorkflow.serve, ServeRequest(inputs={"n": 2}))
    )
    await wait_for_calls(
        stack.calls, lambda e: count(e, "start") >= 2, timeout_s=60, what="the slow call"
    )
    worker.kill()
    await stack.start_worker()
    served.append((await second).branch.config.label)
    for n in (3, 4, 5):
        result = await handle.execute_update(
            ExperimentWorkflow.serve, ServeRequest(inputs={"n": n})
        )
        served.append(result.branch.config.label)
    await handle.signal(ExperimentWorkflow.close)
    state = await handle.result()

    assert served == ["a", "b", "c", "a", "b"]
    assert state.served == 5 and state.status == "completed"
    assert [b.config.label for b in state.branches] == served
