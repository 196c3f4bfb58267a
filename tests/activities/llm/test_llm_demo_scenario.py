"""The bundled `demo` scenario drives its three demo tasks end to end on real workers.

Real Temporal dev server, real Postgres, the real workflows and tools; only the LLM is the
scripted provider reading `mahsm/scenarios/demo.yaml` (latency turned off for speed).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from temporalio.client import Client, WorkflowFailureError

from mahsm.contracts.task import SubtaskStatus, TaskRequest, TaskState, TaskStatus
from tests.engine_harness import Engine, running_engine


def _demo() -> dict[str, Any]:
    text = (resources.files("mahsm") / "scenarios" / "demo.yaml").read_text(encoding="utf-8")
    scenario: dict[str, Any] = yaml.safe_load(text)
    scenario.update(latency_ms=0, jitter_ms=0)
    return scenario


async def _run(engine: Engine, description: str) -> TaskState | WorkflowFailureError:
    handle = await engine.start(TaskRequest(description=description))
    try:
        result: TaskState = await handle.result()
        return result
    except WorkflowFailureError as failure:
        return failure


@pytest.fixture
async def demo_engine(temporal_client: Client, db_pool: asyncpg.Pool, data_dir: Path):  # type: ignore[no-untyped-def]
    async with running_engine(
        client=temporal_client, pool=db_pool, data_dir=data_dir, scenario=_demo()
    ) as engine:
        yield engine


async def test_factorial_demo(demo_engine: Engine) -> None:
    state = await _run(demo_engine, "What is the factorial of 10? Use the calculator.")
    assert isinstance(state, TaskState), state
    assert state.status is TaskStatus.COMPLETED
    assert state.subtask("compute_factorial").result.output == "The factorial of 10 is 3628800."
    assert "3628800" in (state.result or "")


async def test_three_dependent_steps_demo(demo_engine: Engine) -> None:
    state = await _run(
        demo_engine,
        "Analyze our quarterly sales: collect the figures, compute the growth, write a report.",
    )
    assert isinstance(state, TaskState), state
    assert state.status is TaskStatus.COMPLETED
    assert [s.subtask.id for s in state.subtasks] == [
        "collect_sales",
        "compute_growth",
        "write_report",
    ]
    assert all(s.result.status is SubtaskStatus.COMPLETED for s in state.subtasks)
    assert "41.7%" in (state.subtask("compute_growth").result.output or "")
    growth, report = state.subtask("compute_growth"), state.subtask("write_report")
    assert growth.result.started_at and report.result.started_at
    assert report.result.started_at >= (growth.result.finished_at or report.result.started_at)


async def test_failing_branch_demo(demo_engine: Engine) -> None:
    handle = await demo_engine.start(
        TaskRequest(
            description="Build the inventory dashboard from the legacy feed and the supplier list."
        )
    )
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    state = await demo_engine.state(handle)
    assert state.status is TaskStatus.FAILED
    assert "legacy_feed" in (state.error or "")
    legacy = state.subtask("legacy_feed").result
    assert legacy.status is SubtaskStatus.FAILED
    assert "400" in (legacy.error or "")
    assert state.subtask("supplier_list").result.status is SubtaskStatus.COMPLETED
    merge = state.subtask("merge_dashboard").result
    assert merge.status is SubtaskStatus.BLOCKED and merge.started_at is None
