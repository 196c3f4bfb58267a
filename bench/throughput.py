"""Throughput: N concurrent tasks of 5 subtasks on one worker, against a bare Temporal floor.

The scripted model answers at once (zero latency); a plan rule returns 5 independent subtasks,
so each task is a planner call, 5 child `AgentWorkflow`s with one LLM step each, an
aggregation call and the store writes. The floor runs, on the same server in the same run, the
same number of workflow and activity executions with empty bodies (`bench.floor_workflows`):
the counts are read from the histories of the MAHSM tasks just run (local activities, parent
activities before and after the children, one child per subtask with its activities).
Rounds alternate MAHSM and floor so that drifting load on the host hits both alike.

Besides tasks/s and activities/s it reports the CPU time per task of the bench process (the
worker and the client), the Temporal server and Postgres, which other load on the host does
not inflate as much as wall time.

Run: `python -m bench.throughput [--tasks 50] [--rounds 2]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench.common import (
    CpuMeter,
    Stack,
    add_stack_arguments,
    bench_stack,
    engine_settings,
    load_average,
    median,
    print_table,
    running_floor_workers,
    running_workers,
    write_results,
    write_scenario,
)
from bench.floor_workflows import FloorTask, FloorTaskInput
from mahsm.contracts.task import Capability, Plan, Subtask, TaskOptions, TaskRequest, TaskStatus
from mahsm.tasks import start_task

SUBTASKS = 5


@dataclass
class Shape:
    """What one MAHSM task executed, read from its histories."""

    local_activities: int = 0
    before: int = 0
    after: int = 0
    children: int = 0
    child_activities: int = 0

    @property
    def workflows(self) -> int:
        return 1 + self.children

    @property
    def activities(self) -> int:
        return self.local_activities + self.before + self.after + self.child_activities


def plan() -> Plan:
    return Plan(
        subtasks=[
            Subtask(
                id=f"part{i}",
                description=f"throughput part {i}",
                required_capabilities=[Capability.DATA_ANALYSIS],
            )
            for i in range(SUBTASKS)
        ]
    )


async def shape_of(client: Client, task_id: str) -> Shape:
    shape = Shape()
    children: list[str] = []
    history = await client.get_workflow_handle(task_id).fetch_history()
    for event in history.events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            if event.marker_recorded_event_attributes.marker_name == "core_local_activity":
                shape.local_activities += 1
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            if children:
                shape.after += 1
            else:
                shape.before += 1
        elif kind == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            children.append(
                event.start_child_workflow_execution_initiated_event_attributes.workflow_id
            )
    shape.children = len(children)
    for child in children:
        child_history = await client.get_workflow_handle(child).fetch_history()
        shape.child_activities += sum(
            1
            for e in child_history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        )
    return shape


async def mahsm_round(stack: Stack, prefix: str, n: int) -> tuple[float, list[str]]:
    request = TaskRequest(
        description=f"Throughput task [bench] {uuid.uuid4().hex[:8]}",
        options=TaskOptions(max_parallel=SUBTASKS),
    )
    start = time.perf_counter()
    handles = await asyncio.gather(
        *(start_task(stack.client, request, queue_prefix=prefix) for _ in range(n))
    )
    states = await asyncio.gather(*(h.result() for h in handles))
    elapsed = time.perf_counter() - start
    bad = [s for s in states if s.status != TaskStatus.COMPLETED]
    if bad:
        raise RuntimeError(f"{len(bad)} tasks did not complete: {bad[0].error}")
    return elapsed, [h.id for h in handles]


async def floor_round(stack: Stack, queues: tuple[str, str], shapes: list[Shape]) -> float:
    start = time.perf_counter()
    await asyncio.gather(
        *(
            stack.client.execute_workflow(
                FloorTask.run,
                FloorTaskInput(
                    local_activities=s.local_activities,
                    before=[0.0] * s.before,
                    deps={f"c{i}": [] for i in range(s.children)},
                    child_activities=[0.0] * (s.child_activities // max(s.children, 1)),
                    after=[0.0] * s.after,
                    child_queue=queues[1],
                ),
                id=f"floor-{uuid.uuid4()}",
                task_queue=queues[0],
            )
            for s in shapes
        )
    )
    return time.perf_counter() - start


async def main_async(args: argparse.Namespace) -> None:
    n = args.tasks
    rows: list[dict[str, Any]] = []
    load_before = load_average()
    async with bench_stack(args) as stack:
        scenario_file = write_scenario(
            stack.root / "throughput.yaml",
            {
                "latency_ms": 0,
                "rules": [
                    {
                        "purpose": "plan",
                        "match": r"\[bench\]",
                        "respond": {"plan": plan().model_dump(mode="json")},
                    }
                ],
            },
        )
        settings = engine_settings(stack, scenario_file)
        meter = CpuMeter(stack, {"bench process": os.getpid()})
        async with (
            running_workers(stack, settings),
            running_floor_workers(stack, settings) as queues,
        ):
            await mahsm_round(stack, settings.queue_prefix, 5)  # warm-up
            await floor_round(stack, queues, [Shape(1, 2, 2, SUBTASKS, SUBTASKS)] * 5)
            for round_no in range(args.rounds):
                cpu0 = meter.sample()
                elapsed, ids = await mahsm_round(stack, settings.queue_prefix, n)
                cpu1 = meter.sample()
                shapes = await asyncio.gather(*(shape_of(stack.client, i) for i in ids))
                cpu2 = meter.sample()
                floor_elapsed = await floor_round(stack, queues, shapes)
                cpu3 = meter.sample()
                workflows = sum(s.workflows for s in shapes)
                activities = sum(s.activities for s in shapes)
                rows.append(
                    {
                        "round": round_no,
                        "tasks": n,
                        "workflows": workflows,
                        "activities": activities,
                        "activity_mix_per_task": dict(
                            Counter(
                                f"local={s.local_activities} before={s.before} "
                                f"after={s.after} child={s.child_activities}"
                                for s in shapes
                            )
                        ),
                        "mahsm_s": elapsed,
                        "floor_s": floor_elapsed,
                        "mahsm_tasks_per_s": n / elapsed,
                        "floor_tasks_per_s": n / floor_elapsed,
                        "mahsm_activities_per_s": activities / elapsed,
                        "floor_activities_per_s": activities / floor_elapsed,
                        "ratio": floor_elapsed / elapsed,
                        "mahsm_cpu_ms_per_task": {k: (cpu1[k] - cpu0[k]) * 1000 / n for k in cpu0},
                        "floor_cpu_ms_per_task": {k: (cpu3[k] - cpu2[k]) * 1000 / n for k in cpu0},
                    }
                )
                print(f"round {round_no}: done", flush=True)
    ratio = median([r["ratio"] for r in rows])
    print()
    print(f"Throughput, {n} concurrent tasks x {SUBTASKS} subtasks, zero-latency model")
    print_table(
        [
            "round",
            "workflows",
            "activities",
            "MAHSM tasks/s",
            "floor tasks/s",
            "MAHSM act/s",
            "floor act/s",
            "MAHSM/floor",
        ],
        [
            [
                r["round"],
                r["workflows"],
                r["activities"],
                r["mahsm_tasks_per_s"],
                r["floor_tasks_per_s"],
                r["mahsm_activities_per_s"],
                r["floor_activities_per_s"],
                r["ratio"],
            ]
            for r in rows
        ],
    )
    print()
    print("CPU ms per task (median round)")
    names = list(rows[0]["mahsm_cpu_ms_per_task"])
    print_table(
        ["", *names],
        [
            ["MAHSM", *(median([r["mahsm_cpu_ms_per_task"][k] for r in rows]) for k in names)],
            ["floor", *(median([r["floor_cpu_ms_per_task"][k] for r in rows]) for k in names)],
        ],
    )
    path = write_results(
        "throughput",
        {
            "tasks": n,
            "subtasks": SUBTASKS,
            "rounds": rows,
            "ratio_median": ratio,
            "load_average_before": load_before,
            "load_average_after": load_average(),
        },
        args.out,
    )
    print(f"\nMAHSM / bare floor (median): {ratio:.2f}\nwrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50, help="concurrent tasks per round")
    parser.add_argument("--rounds", type=int, default=2, help="MAHSM/floor round pairs")
    add_stack_arguments(parser)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
