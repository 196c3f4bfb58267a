"""Replay recorded histories against the current workflow code: non-determinism fails CI.

The fixtures in `histories/` were written by `python -m tests.replay.record`. A change to
`TaskWorkflow` or `AgentWorkflow` that alters the commands they issue for the same history
(without `workflow.patched`) makes these tests fail. Re-record only after an intended,
compatible change (docs/testing.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from mahsm.workflows.agent_workflow import AgentWorkflow
from mahsm.workflows.task_workflow import TaskWorkflow
from tests.replay.cases import CASES, V1_CASES, V2_PATCHED_CASES, V2_POOL_QUEUE_CASES
from tests.replay.record import CURRENT, HISTORIES, SEPARATOR, record, workflow_id_of

FIXTURES = sorted(HISTORIES.glob("*/*.json"))


def replayer() -> Replayer:
    return Replayer(workflows=[TaskWorkflow, AgentWorkflow], data_converter=pydantic_data_converter)


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(workflow_id_of(path), path.read_text())


def workflow_type(path: Path) -> str:
    events = json.loads(path.read_text())["events"]
    return str(events[0]["workflowExecutionStartedEventAttributes"]["workflowType"]["name"])


def _types(folder: Path, case: str) -> list[str]:
    return [workflow_type(p) for p in sorted(folder.glob(f"{case}{SEPARATOR}*.json"))]


def test_every_case_has_fixtures_of_both_engine_versions() -> None:
    for case in V1_CASES:  # engine v1: every agent a child workflow
        types = _types(HISTORIES / "v1", case)
        assert types.count("TaskWorkflow") == 1, f"v1 case {case!r} has no task history"
        assert "AgentWorkflow" in types, f"no v1 AgentWorkflow history for case {case!r}"
    for case in CASES:  # engine v2: agents inline, a child only where one is handed off
        types = _types(CURRENT, case.name)
        assert types.count("TaskWorkflow") == 1, f"case {case.name!r}: run tests.replay.record"
    for case in V2_PATCHED_CASES:  # inline agents, told apart by the engine-v2 patch marker
        types = _types(HISTORIES / "v2-patched", case)
        assert types.count("TaskWorkflow") == 1, f"v2-patched case {case!r} has no task history"
    for case in V2_POOL_QUEUE_CASES:
        types = _types(HISTORIES / "v2-pool-queue", case)
        assert types.count("TaskWorkflow") == 1, f"v2-pool-queue case {case!r} has no task history"
    assert "AgentWorkflow" in _types(CURRENT, "handoff")
    assert "AgentWorkflow" not in _types(CURRENT, "simple")


def _agent_call_queues(folder: Path) -> set[str]:
    """Queues the `simple` case's agent scheduled its LLM and tool calls on."""
    (path,) = folder.glob(f"simple{SEPARATOR}*.json")
    return {
        attributes["taskQueue"]["name"]
        for event in json.loads(path.read_text())["events"]
        if (attributes := event.get("activityTaskScheduledEventAttributes"))
        and attributes["activityId"].startswith("calc/")
    }


def test_fixtures_hold_agent_calls_on_the_pool_queue_and_on_the_tasks_queue() -> None:
    """Both shapes replay: calls on the pool's queue (before) and on the task's own (now)."""
    before = _agent_call_queues(HISTORIES / "v2-pool-queue")
    now = _agent_call_queues(CURRENT)
    assert len(before) == 1 and "-pool." in next(iter(before)), before
    assert len(now) == 1 and next(iter(now)).endswith("-tasks"), now


def fixture_id(path: Path) -> str:
    case, workflow_id = path.stem.split(SEPARATOR, 1)
    child = workflow_id.split(".", 1)[1] if "." in workflow_id else "task"
    return f"{path.parent.name}:{case}:{child}"


@pytest.mark.parametrize("path", FIXTURES, ids=[fixture_id(p) for p in FIXTURES])
async def test_recorded_history_replays_deterministically(path: Path) -> None:
    result = await replayer().replay_workflow(load(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure!r}"


async def test_fresh_recording_of_every_case_replays(
    temporal_client: Client, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """The recorder still works, and what the current code records replays on itself."""
    out = tmp_path / "histories"
    written = await record(
        CASES, client=temporal_client, pool=db_pool, data_root=tmp_path / "data", out_dir=out
    )
    assert {p.stem.split(SEPARATOR)[0] for p in written} == {c.name for c in CASES}
    failures = {}
    for path in written:
        result = await replayer().replay_workflow(load(path), raise_on_replay_failure=False)
        if result.replay_failure is not None:
            failures[path.name] = repr(result.replay_failure)
    assert not failures
