"""`tool_execute` as a real activity on a real worker of the Temporal dev server."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
)

from mahsm.activities.blobs import BlobStore
from mahsm.activities.tools import ToolActivities, ToolContext, default_registry
from mahsm.contracts.llm import ToolCall
from mahsm.contracts.task import Capability
from mahsm.settings import Settings
from mahsm.workers.main import build_workers
from tests.activities.tools.tool_probe import ProbeInput, ProbeResult, ToolProbeWorkflow

MakeActivities = Callable[..., ToolActivities]


async def run_probe(
    client: Client,
    task_queue: str,
    activities: ToolActivities,
    request: ProbeInput,
    *,
    interceptors: list[Interceptor] | None = None,
) -> tuple[ProbeResult, str]:
    workflow_id = f"probe-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[ToolProbeWorkflow],
        activities=[activities.execute],
        interceptors=interceptors or [],
    ):
        handle = await client.start_workflow(
            ToolProbeWorkflow.run, request, id=workflow_id, task_queue=task_queue
        )
        result = await handle.result()
    return result, f"{workflow_id}:{handle.result_run_id}"


async def test_tool_execute_on_a_real_worker_returns_large_reads_by_reference(
    temporal_client: Client,
    task_queue: str,
    make_activities: MakeActivities,
    tool_settings: Settings,
    db_pool: asyncpg.Pool,
) -> None:
    task_id = f"task-{uuid.uuid4().hex[:8]}"
    workspace = tool_settings.workspace_root() / task_id
    workspace.mkdir(parents=True)
    big = ("0123456789abcdef" * 64 + "\n") * 3 * 1024  # ~3 MiB: over Temporal's 2 MB limit
    (workspace / "big.txt").write_text(big)
    calls = [
        ToolCall(id="c1", name="calculator", arguments='{"expression": "10!"}'),
        ToolCall(id="c2", name="read_file", arguments='{"path": "big.txt"}'),
        ToolCall(id="c3", name="write_file", arguments='{"path": "out/a.txt", "content": "hi"}'),
        ToolCall(id="c4", name="read_file", arguments='{"path": "/etc/passwd"}'),
        ToolCall(id="c5", name="sql_query", arguments='{"query": "SELECT 1"}'),
        ToolCall(id="c6", name="no_such_tool", arguments="{}"),
    ]
    result, prefix = await run_probe(
        temporal_client,
        task_queue,
        make_activities(tool_output_max_bytes=4 * 1024 * 1024),  # the whole file fits
        ProbeInput(task_id=task_id, capabilities=[Capability.FILE_PROCESSING], calls=calls),
    )
    assert result.offered == [
        "calculator",
        "get_shared_state",
        "list_files",
        "read_file",
        "set_shared_state",
        "write_file",
    ]
    calc, read, write, escape, sql, unknown = result.outcomes
    assert (calc.tool_call_id, calc.content, calc.is_error) == ("c1", "3628800", False)
    assert len(big.encode()) > 2 * 1024 * 1024
    assert read.content is None and read.content_ref is not None and not read.is_error
    assert read.content_ref.size_bytes == len(big.encode())
    assert await BlobStore(db_pool).get_text(read.content_ref) == big
    assert write.content == "wrote 2 bytes to 'out/a.txt'"
    assert (workspace / "out" / "a.txt").read_text() == "hi"
    recorded = await db_pool.fetchval(
        "SELECT result FROM tool_effects WHERE idempotency_key = $1", f"{prefix}:3"
    )
    assert recorded["content"] == write.content  # keyed <workflow id>:<run id>:<activity id>
    assert escape.is_error and "is absolute" in (escape.content or "")
    assert sql.is_error and "not available to this subtask" in (sql.content or "")
    assert unknown.is_error and (unknown.content or "").startswith("Unknown tool 'no_such_tool'")


class _CrashAfterFirstAttempt(Interceptor):
    """Fails the first attempt of every activity after its body ran, like a worker dying
    between doing the work and reporting it."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, int]] = []

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _CrashingInbound(next, self.attempts)


class _CrashingInbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, attempts: list[tuple[str, int]]) -> None:
        super().__init__(next)
        self.attempts = attempts

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        result = await super().execute_activity(input)
        info = activity.info()
        self.attempts.append((info.activity_id, info.attempt))
        if info.attempt == 1:
            raise RuntimeError("simulated crash after the tool ran")
        return result


async def test_a_retried_side_effect_is_not_repeated(
    temporal_client: Client,
    task_queue: str,
    make_activities: MakeActivities,
    db_pool: asyncpg.Pool,
) -> None:
    effects: list[str] = []
    registry = default_registry().copy()

    def charge_card(context: ToolContext, amount: int) -> str:
        """Charge the customer's card.

        Args:
            context: Context.
            amount: Cents.
        """
        effects.append(context.idempotency_key)
        return f"charged {amount} (charge #{len(effects)})"

    registry.register(charge_card, capabilities=[Capability.API_INTEGRATION], side_effects=True)
    calls = [
        ToolCall(id="c1", name="charge_card", arguments='{"amount": 500}'),
        ToolCall(id="c2", name="calculator", arguments='{"expression": "2**10"}'),
    ]
    crash = _CrashAfterFirstAttempt()
    result, prefix = await run_probe(
        temporal_client,
        task_queue,
        make_activities(registry),
        ProbeInput(task_id="task-retry", capabilities=[Capability.API_INTEGRATION], calls=calls),
        interceptors=[crash],
    )
    assert crash.attempts == [("1", 1), ("1", 2), ("2", 1), ("2", 2)]
    charge, calc = result.outcomes
    assert charge.content == "charged 500 (charge #1)" and not charge.is_error
    assert calc.content == "1024"  # a read-only tool simply ran again on its retry
    assert effects == [f"{prefix}:1"]  # two attempts, one effect
    recorded = await db_pool.fetchval(
        "SELECT result FROM tool_effects WHERE idempotency_key = $1", f"{prefix}:1"
    )
    assert recorded["content"] == "charged 500 (charge #1)"


async def test_a_connection_error_in_a_tool_is_retried_by_temporal(
    temporal_client: Client, task_queue: str, make_activities: MakeActivities
) -> None:
    attempts: list[int] = []
    registry = default_registry().copy()

    async def lookup(key: str) -> str:
        """Look something up in a database that drops the first connection.

        Args:
            key: What to look up.
        """
        attempts.append(activity.info().attempt)
        if len(attempts) == 1:
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle")
        return f"{key}=42"

    registry.register(lookup, capabilities=None)
    result, _ = await run_probe(
        temporal_client,
        task_queue,
        make_activities(registry),
        ProbeInput(
            task_id="task-outage",
            capabilities=[],
            calls=[ToolCall(id="c1", name="lookup", arguments='{"key": "answer"}')],
        ),
    )
    assert attempts == [1, 2]  # the first attempt failed as an activity, not as a tool error
    (outcome,) = result.outcomes
    assert outcome.content == "answer=42" and not outcome.is_error


async def test_build_workers_hands_the_sql_pool_to_the_tool_activity(
    temporal_client: Client,
    db_pool: asyncpg.Pool,
    sql_pool: asyncpg.Pool,
    settings_with: Callable[..., Settings],
) -> None:
    for given in (sql_pool, None):
        settings = settings_with(queue_prefix=f"test-{uuid.uuid4().hex[:10]}")  # fresh queues
        workers = build_workers(
            client=temporal_client,
            pool=db_pool,
            settings=settings,
            capabilities=[Capability.DATABASE_OPERATIONS],
            serve_tasks=False,
            sql_pool=given,
        )
        owners = [
            getattr(function, "__self__", None)
            for worker in workers
            for function in worker.config().get("activities", [])
        ]
        (tools,) = [owner for owner in owners if isinstance(owner, ToolActivities)]
        assert tools.pool is db_pool and tools.sql_pool is given
