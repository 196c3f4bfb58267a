"""The workload of the fault tests: tasks whose plans are small DAGs, with exact expected results.

Every task is planned by the scripted planner into one of three shapes (3 to 5 subtasks,
depth 3). Each subtask calls the calculator, then answers `<id>=42`; the aggregator echoes
its prompt. So the right result of a task is known exactly: `expected_result(description)`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from typing import Any

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.service import RPCError

from mahsm.contracts.task import TaskRequest, TaskState, TaskStatus
from mahsm.tasks import start_task
from mahsm.workflows import prompts
from mahsm.workflows.task_workflow import TaskWorkflow

SHAPES: dict[str, list[tuple[str, list[str]]]] = {
    "chain3": [("a", []), ("b", ["a"]), ("c", ["b"])],
    "diamond4": [("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["b", "c"])],
    "fan5": [("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["a"]), ("e", ["b", "c", "d"])],
}
SUBTASK_IDS = sorted({sid for nodes in SHAPES.values() for sid, _ in nodes})


def shape_of(index: int) -> str:
    return list(SHAPES)[index % len(SHAPES)]


def description(index: int, shape: str | None = None) -> str:
    return f"chaos task {index:03d} shape {shape or shape_of(index)}"


def scenario(
    *,
    latency_ms: float,
    jitter_ms: float,
    fault_rate: float = 0.0,
    seed: int = 7,
    tools: bool = True,
    extra_rules: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The scripted scenario serving `description(i)` tasks.

    With `tools=False` each subtask answers `<id>=42` in one LLM call, without the calculator.
    """
    rules: list[dict[str, Any]] = list(extra_rules or [])
    for shape, nodes in SHAPES.items():
        plan = {
            "subtasks": [
                {
                    "id": sid,
                    "description": f"Step {sid} of the {shape} plan",
                    "required_capabilities": ["data_analysis"],
                    "depends_on": deps,
                }
                for sid, deps in nodes
            ]
        }
        rules.append({"purpose": "plan", "match": f"shape {shape}", "respond": {"plan": plan}})
    if tools:
        calculate = {"name": "calculator", "arguments": {"expression": "6*7"}}
        rules.append(
            {"purpose": "agent_step", "after_tool": False, "respond": {"tool_calls": [calculate]}}
        )
    for sid in SUBTASK_IDS:
        rules.append(
            {
                "purpose": "agent_step",
                "subtask": sid,
                "respond": {"content": f"{sid}={{last_tool_result}}" if tools else f"{sid}=42"},
            }
        )
    rules.append({"purpose": "aggregate", "respond": {"content": "FINAL:\n{context}"}})
    return {
        "latency_ms": latency_ms,
        "jitter_ms": jitter_ms,
        "seed": seed,
        "faults": {"rate": fault_rate, "kinds": [429, 500, "timeout"]},
        "rules": rules,
    }


def expected_outputs(shape: str) -> dict[str, str]:
    return {sid: f"{sid}=42" for sid, _ in SHAPES[shape]}


def expected_result(text: str) -> str:
    """The exact result of the task described by `text`."""
    shape = text.rsplit(" ", 1)[-1]
    return "FINAL:\n" + prompts.aggregator_user(text, expected_outputs(shape))


def assert_right_result(state: TaskState) -> None:
    assert state.status == TaskStatus.COMPLETED, (state.task_id, state.status, state.error)
    shape = state.description.rsplit(" ", 1)[-1]
    outputs = {item.subtask.id: item.result.output for item in state.subtasks}
    assert outputs == expected_outputs(shape), (state.task_id, outputs)
    assert state.result == expected_result(state.description), state.task_id


def fixed_task_id(name: str) -> str:
    """A task id that is the same in every run (each test has its own Temporal server)."""
    return f"task-{uuid.uuid5(uuid.NAMESPACE_URL, f'mahsm-chaos/{name}')}"


async def start_tasks(
    client: Client, prefix: str, count: int, *, fixed_ids: bool = False
) -> list[WorkflowHandle[Any, TaskState]]:
    """Start `count` tasks at once, the way the API does.

    With `fixed_ids`, the ids (and so every LLM request, and the faults the scripted provider
    injects into it) are the same in every run.
    """
    return list(
        await asyncio.gather(
            *(
                start_task(
                    client,
                    TaskRequest(description=description(i)),
                    queue_prefix=prefix,
                    task_id=fixed_task_id(f"task-{i}") if fixed_ids else None,
                )
                for i in range(count)
            )
        )
    )


async def final_states(
    handles: list[WorkflowHandle[Any, TaskState]], *, timeout_s: float
) -> list[TaskState]:
    """Wait for every task to end; the state of each (through the query, even when failed).

    Client calls are retried: the Temporal server may be restarting while we wait.
    """

    async def one(handle: WorkflowHandle[Any, TaskState]) -> TaskState:
        while True:
            try:
                try:
                    await handle.result()
                except WorkflowFailureError:
                    pass
                return await handle.query(TaskWorkflow.state)
            except RPCError:  # the server may be down or restarting
                await asyncio.sleep(0.5)

    return list(await asyncio.wait_for(asyncio.gather(*(one(h) for h in handles)), timeout_s))


async def wait_for_calls(
    stack_calls: Any, predicate: Any, *, timeout_s: float, what: str
) -> list[dict[str, Any]]:
    """Poll the call log until `predicate(entries)` holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        entries = stack_calls()
        if predicate(entries):
            return entries
        assert time.monotonic() < deadline, f"{what} not reached within {timeout_s}s"
        await asyncio.sleep(0.05)


# Short activity timeouts, so calls lost with a killed worker or server are retried in seconds.
SHORT_TIMEOUTS = {"MAHSM_LLM_TIMEOUT_S": "5", "MAHSM_TOOL_TIMEOUT_S": "5"}


async def wait_mid_dag(stack_calls: Any, tasks: int) -> list[dict[str, Any]]:
    """Wait until every task is planned and has finished at least one agent step."""
    return await wait_for_calls(
        stack_calls,
        lambda e: count(e, "done", "plan") == tasks and count(e, "done", "agent_step") >= tasks,
        timeout_s=90,
        what="all tasks running their DAGs",
    )


def count(entries: list[dict[str, Any]], event: str, purpose: str | None = None) -> int:
    return sum(
        1 for e in entries if e["event"] == event and (purpose is None or e["purpose"] == purpose)
    )


def repeated_completions(entries: list[dict[str, Any]]) -> dict[tuple[str, str], list[float]]:
    """(workflow_id, activity_id) of LLM calls that completed more than once, with the times."""
    done: dict[tuple[str, str], list[float]] = defaultdict(list)
    for entry in entries:
        if entry["event"] == "done":
            done[(entry["workflow_id"], entry["activity_id"])].append(float(entry["ts"]))
    return {key: sorted(times) for key, times in done.items() if len(times) > 1}
