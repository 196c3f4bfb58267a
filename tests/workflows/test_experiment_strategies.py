"""Custom strategies by registry, and round robin across continue-as-new, on the real engine."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mahsm.experiments.models import BranchStatus, ExperimentState, ServeRequest
from mahsm.experiments.strategies import BranchRunner, known_strategies, register_strategy
from mahsm.workflows.experiment_workflow import ExperimentWorkflow
from tests.workflows.test_experiment_workflow import SCENARIO, _mode, _request, _start


@register_strategy("last_first")
async def last_first(runner: BranchRunner) -> None:
    """Test strategy: the configs one at a time, the last one first."""
    for index in reversed(range(len(runner.request.configs))):
        await runner.run_branch(runner.new_branch(index, row=None), {})


async def test_a_registered_strategy_name_runs_its_function(engine_factory) -> None:
    async with engine_factory(SCENARIO) as engine:
        handle = await _start(engine, _request([_mode("a"), _mode("b")], strategy="last_first"))
        state: ExperimentState = await handle.result()
    assert state.strategy == "last_first"
    assert [b.config.inputs["mode"] for b in state.branches] == ["b", "a"]
    assert [b.status for b in state.branches] == [BranchStatus.SUCCESS] * 2
    first, second = state.branches
    assert first.finished_at is not None and second.started_at is not None
    assert first.finished_at <= second.started_at  # one at a time, as the strategy says


async def test_the_example_cascade_stops_at_the_first_config_that_succeeds(
    engine_factory,
) -> None:
    configs = [_mode("fail"), _mode("good"), _mode("other")]
    async with engine_factory(SCENARIO) as engine:
        handle = await _start(
            engine, _request(configs, strategy="examples.experiments.strategies.cascade")
        )
        state: ExperimentState = await handle.result()
    assert [b.status for b in state.branches] == [
        BranchStatus.FAILED,
        BranchStatus.SUCCESS,
        BranchStatus.SKIPPED,
    ]
    assert [s.errors for s in state.summary] == [1, 0, 0]


def test_an_unknown_strategy_is_rejected_listing_the_known_ones() -> None:
    with pytest.raises(ValidationError) as raised:
        _request([_mode("a")], strategy="fastest")
    message = str(raised.value)
    assert "unknown strategy 'fastest'" in message
    assert "last_first, multi_branch, round_robin, shadow" in message
    assert {"last_first", "multi_branch", "round_robin", "shadow"} <= set(known_strategies())


async def test_round_robin_keeps_its_rotation_across_continue_as_new(engine_factory) -> None:
    configs: list[dict[str, Any]] = [_mode("a"), _mode("b"), _mode("c")]
    async with engine_factory(SCENARIO) as engine:
        started = await _start(
            engine, _request(configs, strategy="round_robin", continue_as_new_after=2)
        )
        # By workflow id only: requests go to whichever run is current.
        handle = engine.client.get_workflow_handle_for(ExperimentWorkflow.run, started.id)
        served = []
        for _ in range(7):
            result = await handle.execute_update(ExperimentWorkflow.serve, ServeRequest())
            assert result.branch.status == BranchStatus.SUCCESS
            served.append(result.branch.config.inputs["mode"])
        current = await handle.describe()
        await handle.signal(ExperimentWorkflow.close)
        state: ExperimentState = await handle.result()
    assert served == ["a", "b", "c", "a", "b", "c", "a"]
    assert current.run_id != started.first_execution_run_id  # it did continue as new
    assert state.served == 7
    assert [b.row for b in state.branches] == list(range(7))
    assert [s.branches for s in state.summary] == [3, 2, 2]
