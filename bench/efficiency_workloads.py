"""Workloads of `bench.efficiency`: the scripted scenario, the MAHSM and floor requests, the
floor's worker, and counting what a task left in Temporal (events, workflows, activities).

Only public entry points of MAHSM are used (`start_task` with a `TaskRequest`, the scripted
provider, `build_workers` via `bench.common.running_workers`, the `llm_complete` and
`tool_execute` activities), so the benchmark runs unchanged against any engine version.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from bench.common import Stack
from bench.one_workflow_contracts import FloorRequest
from bench.one_workflow_floor import OneWorkflowTask
from mahsm.activities.blobs import BlobStore
from mahsm.activities.llm.activity import LLMActivities
from mahsm.activities.tools.activity import ToolActivities
from mahsm.activities.tools.registry import specs_for
from mahsm.contracts.task import Capability, Plan, Subtask, TaskOptions, TaskRequest, TaskStatus
from mahsm.settings import Settings
from mahsm.tasks import start_task

CAPABILITIES = [Capability.DATA_ANALYSIS]
FANOUT_B = 10
FANOUT_C = 5
TOOL_CALLS_A = 3
_CALCULATOR = {"name": "calculator", "arguments": {"expression": "17 * 23"}}


def fanout_plan(n: int, workload: str) -> Plan:
    """`n` independent subtasks."""
    return Plan(
        subtasks=[
            Subtask(
                id=f"agent{i}",
                description=f"Part {i} of workload {workload}: compute it",
                required_capabilities=CAPABILITIES,
            )
            for i in range(n)
        ],
        rationale=f"benchmark workload {workload}",
    )


def single_agent_plan() -> Plan:
    """Workload (a): one subtask, given in the request (no planner call)."""
    return Plan(
        subtasks=[
            Subtask(
                id="agent",
                description="Multiply with the calculator, three times, then answer",
                required_capabilities=CAPABILITIES,
            )
        ]
    )


def scenario(latency_ms: float) -> dict[str, Any]:
    """Rules selected by a `[wl=<x>]` tag in the task description (format: docs/llm.md).

    (a) and (b) calls take `latency_ms`; (c) answers at once (the default rules: an agent
    step's answer is a final one, the aggregation joins its inputs).
    """

    def rule(purpose: str, workload: str, respond: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {
            "purpose": purpose,
            "match": rf"\[wl={workload}\]",
            **extra,
            "latency_ms": latency_ms if workload != "c" else 0,
            "respond": respond,
        }

    final = {"content": "The result is {last_tool_result}."}
    return {
        "latency_ms": 0,
        "jitter_ms": 0,
        "seed": 1,
        "rules": [
            rule("agent_step", "a", final, step=TOOL_CALLS_A),
            rule("agent_step", "a", {"tool_calls": [_CALCULATOR]}),
            rule("aggregate", "a", {"content": "{user}"}),
            rule("plan", "b", {"plan": fanout_plan(FANOUT_B, "b").model_dump(mode="json")}),
            rule("agent_step", "b", {"tool_calls": [_CALCULATOR]}, after_tool=False),
            rule("agent_step", "b", final, after_tool=True),
            rule("aggregate", "b", {"content": "{user}"}),
            rule("plan", "c", {"plan": fanout_plan(FANOUT_C, "c").model_dump(mode="json")}),
        ],
    }


def description(workload: str) -> str:
    """A task description selecting `workload`'s rules, unique per run."""
    return f"Efficiency benchmark [wl={workload}] {uuid.uuid4().hex[:8]}"


def mahsm_request(workload: str, *, max_parallel: int | None = None) -> TaskRequest:
    """The MAHSM task of `workload`; `max_parallel` None keeps the engine's default."""
    options = TaskOptions() if max_parallel is None else TaskOptions(max_parallel=max_parallel)
    plan = single_agent_plan() if workload == "a" else None
    return TaskRequest(description=description(workload), plan=plan, options=options)


def floor_request(workload: str, settings: Settings) -> FloorRequest:
    """The same work for the one-workflow floor."""
    return FloorRequest(
        description=description(workload),
        model=settings.default_model,
        subtasks=single_agent_plan().subtasks if workload == "a" else None,
        tools=specs_for(CAPABILITIES),
        plan_schema=Plan.model_json_schema(),
        llm_timeout_s=settings.llm_timeout_s,
        tool_timeout_s=settings.tool_timeout_s,
    )


@asynccontextmanager
async def running_floor(
    stack: Stack, settings: Settings, *, eager: bool = True
) -> AsyncIterator[str]:
    """One worker serving `OneWorkflowTask` and MAHSM's LLM and tool activities, built with
    the same settings (scenario) and tuned like MAHSM's; yields its task queue.

    With `eager` False every activity goes through the server's matching to a poller, as
    MAHSM's calls to a capability pool's queue do, instead of being handed back with the
    workflow task that scheduled it.
    """
    blobs = BlobStore(stack.pool, threshold_bytes=settings.claim_check_bytes)
    llm = LLMActivities(settings=settings, blobs=blobs)
    tools = ToolActivities(pool=stack.pool, settings=settings, blobs=blobs)
    queue = f"onewf{uuid.uuid4().hex[:8]}"
    worker = Worker(
        stack.client,
        task_queue=queue,
        workflows=[OneWorkflowTask],
        activities=[llm.complete, tools.execute],
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        disable_eager_activity_execution=not eager,
    )
    async with worker:
        yield queue


async def run_mahsm(
    stack: Stack, prefix: str, requests: Sequence[TaskRequest]
) -> tuple[float, list[str]]:
    """Start every request at once, wait for all; returns (seconds, task ids)."""
    start = time.perf_counter()
    handles = await asyncio.gather(
        *(start_task(stack.client, r, queue_prefix=prefix) for r in requests)
    )
    states = await asyncio.gather(*(h.result() for h in handles))
    elapsed = time.perf_counter() - start
    bad = [s for s in states if s.status != TaskStatus.COMPLETED]
    if bad:
        raise RuntimeError(f"{len(bad)} MAHSM tasks ended {bad[0].status}: {bad[0].error}")
    return elapsed, [h.id for h in handles]


async def run_floor(
    stack: Stack, queue: str, requests: Sequence[FloorRequest]
) -> tuple[float, list[str]]:
    """Start every floor task at once, wait for all; returns (seconds, workflow ids)."""
    start = time.perf_counter()
    handles = await asyncio.gather(
        *(
            stack.client.start_workflow(
                OneWorkflowTask.run, r, id=f"onewf-{uuid.uuid4()}", task_queue=queue
            )
            for r in requests
        )
    )
    await asyncio.gather(*(h.result() for h in handles))
    return time.perf_counter() - start, [h.id for h in handles]


@dataclass
class HistoryStats:
    """What a task left in Temporal: its workflow runs (the task's, every child's, every
    continued-as-new run) and their events and activities."""

    workflows: int = 0
    events: int = 0
    activities: Counter[str] = field(default_factory=Counter)
    local_activities: int = 0

    def add(self, other: HistoryStats) -> None:
        self.workflows += other.workflows
        self.events += other.events
        self.activities.update(other.activities)
        self.local_activities += other.local_activities

    def per_task(self, tasks: int) -> dict[str, Any]:
        return {
            "workflows": self.workflows / tasks,
            "events": self.events / tasks,
            "activities": {k: v / tasks for k, v in sorted(self.activities.items())},
            "local_activities": self.local_activities / tasks,
        }


async def history_stats(client: Client, workflow_id: str) -> HistoryStats:
    """Walk the task's history, its children's (recursively) and earlier runs."""
    stats = HistoryStats()
    pending: list[tuple[str, str | None]] = [(workflow_id, None)]
    while pending:
        wid, run_id = pending.pop()
        history = await client.get_workflow_handle(wid, run_id=run_id).fetch_history()
        stats.workflows += 1
        stats.events += len(history.events)
        for event in history.events:
            kind = event.event_type
            if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
                previous = event.workflow_execution_started_event_attributes
                if previous.continued_execution_run_id:
                    pending.append((wid, previous.continued_execution_run_id))
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                name = event.activity_task_scheduled_event_attributes.activity_type.name
                stats.activities[name] += 1
            elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
                if event.marker_recorded_event_attributes.marker_name == "core_local_activity":
                    stats.local_activities += 1
            elif kind == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
                child = event.start_child_workflow_execution_initiated_event_attributes
                pending.append((child.workflow_id, None))
    return stats


async def total_stats(client: Client, workflow_ids: Sequence[str]) -> HistoryStats:
    """`history_stats` summed over `workflow_ids`, a few fetches at a time."""
    limit = asyncio.Semaphore(8)

    async def one(workflow_id: str) -> HistoryStats:
        async with limit:
            return await history_stats(client, workflow_id)

    total = HistoryStats()
    for stats in await asyncio.gather(*(one(w) for w in workflow_ids)):
        total.add(stats)
    return total
