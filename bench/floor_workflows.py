"""Bare Temporal workflows: the floor MAHSM is compared with.

`FloorTask` mirrors the shape of a `TaskWorkflow` execution with nothing of MAHSM in it: some
local activities, some activities before the DAG, one child workflow per subtask started as
soon as its dependencies finish, some activities after. Every activity sleeps a given time
(zero: an empty body). This module imports only the SDK so the sandbox loads it cheaply, as a
plain Temporal user's workflow would be loaded.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import activity, workflow


@dataclass
class Sleep:
    ms: float = 0.0


@dataclass
class FloorChildInput:
    activities: list[float] = field(default_factory=list)


@dataclass
class FloorTaskInput:
    local_activities: int = 0
    before: list[float] = field(default_factory=list)
    deps: dict[str, list[str]] = field(default_factory=dict)
    child_activities: list[float] = field(default_factory=list)
    after: list[float] = field(default_factory=list)
    child_queue: str = ""


@activity.defn(name="floor_sleep")
async def floor_sleep(request: Sleep) -> None:
    if request.ms > 0:
        await asyncio.sleep(request.ms / 1000)


_TIMEOUT = timedelta(seconds=60)


@workflow.defn(name="FloorChild")
class FloorChild:
    @workflow.run
    async def run(self, request: FloorChildInput) -> None:
        for ms in request.activities:
            await workflow.execute_activity(floor_sleep, Sleep(ms), start_to_close_timeout=_TIMEOUT)


@workflow.defn(name="FloorTask")
class FloorTask:
    @workflow.run
    async def run(self, request: FloorTaskInput) -> None:
        for _ in range(request.local_activities):
            await workflow.execute_local_activity(
                floor_sleep, Sleep(0), start_to_close_timeout=_TIMEOUT
            )
        for ms in request.before:
            await workflow.execute_activity(floor_sleep, Sleep(ms), start_to_close_timeout=_TIMEOUT)
        done: dict[str, asyncio.Task[None]] = {}
        prefix = workflow.info().workflow_id

        async def node(name: str, deps: list[str]) -> None:
            await asyncio.gather(*(done[d] for d in deps))
            await workflow.execute_child_workflow(
                FloorChild.run,
                FloorChildInput(request.child_activities),
                id=f"{prefix}.{name}",
                task_queue=request.child_queue or workflow.info().task_queue,
            )

        for name, deps in request.deps.items():
            done[name] = asyncio.create_task(node(name, deps))
        await asyncio.gather(*done.values())
        for ms in request.after:
            await workflow.execute_activity(floor_sleep, Sleep(ms), start_to_close_timeout=_TIMEOUT)
