"""A real MAHSM engine for tests: in-process workers on a real Temporal and a real Postgres.

Each engine gets its own queue prefix, so tests never share task queues or workers.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from mahsm.activities.llm.registry import ProviderRegistry
from mahsm.activities.tools.registry import ToolRegistry
from mahsm.contracts.task import Capability, TaskRequest, TaskState
from mahsm.queues import tasks_queue
from mahsm.settings import Settings, load_settings
from mahsm.workers.main import build_workers
from mahsm.workflows.task_workflow import TaskWorkflow


@dataclass
class Engine:
    """Handles to a running engine and helpers to submit and inspect tasks."""

    client: Client
    pool: asyncpg.Pool
    settings: Settings

    async def start(
        self, request: TaskRequest, *, task_id: str | None = None
    ) -> WorkflowHandle[Any, TaskState]:
        """Start a task the way the API does."""
        return await self.client.start_workflow(
            TaskWorkflow.run,
            request,
            id=task_id or f"task-{uuid.uuid4()}",
            task_queue=tasks_queue(self.settings.queue_prefix),
        )

    async def state(self, handle: WorkflowHandle[Any, TaskState]) -> TaskState:
        """The live state through the `state` query."""
        return await handle.query(TaskWorkflow.state)

    async def wait_for(
        self,
        handle: WorkflowHandle[Any, TaskState],
        predicate: Callable[[TaskState], bool],
        *,
        timeout_s: float = 30.0,
    ) -> TaskState:
        """Poll the `state` query until `predicate` holds."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            state = await self.state(handle)
            if predicate(state):
                return state
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"condition not reached; last state: {state}")
            await asyncio.sleep(0.1)

    async def wait_for_experiment(
        self,
        handle: WorkflowHandle[Any, Any],
        predicate: Callable[[Any], bool],
        *,
        timeout_s: float = 30.0,
    ) -> Any:
        """Poll an experiment's `state` query until `predicate` holds."""
        from mahsm.experiments.models import ExperimentState

        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            state = ExperimentState.model_validate(await handle.query("state"))
            if predicate(state):
                return state
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"condition not reached; last state: {state}")
            await asyncio.sleep(0.05)

    async def task_row(self, task_id: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow("SELECT * FROM tasks WHERE id = $1", task_id)

    async def subtask_rows(self, task_id: str) -> dict[str, asyncpg.Record]:
        rows = await self.pool.fetch("SELECT * FROM subtasks WHERE task_id = $1", task_id)
        return {r["id"]: r for r in rows}

    async def events(self, task_id: str) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            "SELECT * FROM task_events WHERE task_id = $1 ORDER BY seq", task_id
        )

    async def subtask_statuses(self, task_id: str, subtask_id: str) -> list[str]:
        return [
            e["status"]
            for e in await self.events(task_id)
            if e["kind"] == "subtask_status" and e["subtask_id"] == subtask_id
        ]


# Scripted-scenario rules (format: docs/llm.md) shared by the engine and API tests.
AGGREGATE = {"purpose": "aggregate", "respond": {"content": "FINAL:\n{context}"}}


def plan_rule(match: str, subtasks: list[dict[str, object]]) -> dict[str, object]:
    """A planner answer for tasks whose text matches `match`."""
    return {"purpose": "plan", "match": match, "respond": {"plan": {"subtasks": subtasks}}}


def answer_rule(subtask: str, content: str, **extra: object) -> dict[str, object]:
    """An agent answer for the subtask whose description starts with `subtask`."""
    return {
        "purpose": "agent_step",
        "match": r"Your subtask:\s*" + subtask,
        "respond": {"content": content},
        **extra,
    }


def write_scenario(path: Path, scenario: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(scenario))
    return path


def scripted_settings(data_dir: Path, scenario: dict[str, Any], **overrides: Any) -> Settings:
    """Settings of a test engine: a queue prefix of its own, the scripted model on `scenario`."""
    return load_settings(
        _env_file=None,
        queue_prefix=f"t{uuid.uuid4().hex[:10]}",
        data_dir=data_dir,
        scripted_scenario=write_scenario(data_dir / "scenario.yaml", scenario),
        default_model="scripted/test",
        **overrides,
    )


@asynccontextmanager
async def running_workers(
    client: Client, pool: asyncpg.Pool, settings: Settings
) -> AsyncIterator[None]:
    """Every worker `settings` asks for, running until the end of the block."""
    async with AsyncExitStack() as stack:
        for worker in build_workers(client=client, pool=pool, settings=settings):
            await stack.enter_async_context(worker)
        yield


@asynccontextmanager
async def running_engine(
    *,
    client: Client,
    pool: asyncpg.Pool,
    data_dir: Path,
    scenario: dict[str, Any],
    capabilities: Sequence[Capability] | None = None,
    extra_pools: Sequence[Sequence[Capability]] = (),
    tools: ToolRegistry | None = None,
    providers: ProviderRegistry | None = None,
    **overrides: Any,
) -> AsyncIterator[Engine]:
    """Workers for one test: the tasks queue plus one pool (all capabilities by default)."""
    settings = scripted_settings(data_dir, scenario, **overrides)
    workers = build_workers(
        client=client,
        pool=pool,
        settings=settings,
        capabilities=capabilities,
        tools=tools,
        providers=providers,
    )
    for caps in extra_pools:
        workers += build_workers(
            client=client, pool=pool, settings=settings, capabilities=caps, serve_tasks=False
        )
    async with AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        yield Engine(client=client, pool=pool, settings=settings)


async def agent_activities(client: Client, task_id: str, subtask_id: str) -> list[Any]:
    """`ActivityTaskScheduled` attributes of one agent's calls, wherever the agent ran.

    Inline agents' calls are in the task's history (activity ids `<subtask>/llm-<n>`,
    `<subtask>/tool-<n>-<k>`); an agent moved to a child workflow has them in its own.
    """
    found = []
    async for event in client.get_workflow_handle(task_id).fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            attributes = event.activity_task_scheduled_event_attributes
            if attributes.activity_id.startswith(subtask_id + "/"):
                found.append(attributes)
    child = client.get_workflow_handle(f"{task_id}.{subtask_id}")
    try:
        async for event in child.fetch_history_events():
            if event.HasField("activity_task_scheduled_event_attributes"):
                found.append(event.activity_task_scheduled_event_attributes)
    except RPCError:
        pass  # the agent ran inline only
    return found
