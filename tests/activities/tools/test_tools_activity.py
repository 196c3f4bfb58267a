from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from mahsm.activities.blobs import BlobStore
from mahsm.activities.tools import (
    ToolActivities,
    ToolContext,
    ToolError,
    ToolRegistry,
    default_registry,
    idempotency_key,
)
from mahsm.contracts.task import Capability
from mahsm.contracts.tools import ToolInvocation, ToolOutcome
from mahsm.devstack.process import free_port
from mahsm.settings import Settings

MakeActivities = Callable[..., ToolActivities]
MakeInvocation = Callable[..., ToolInvocation]


def _key() -> str:
    return idempotency_key(workflow_id="wf", run_id=uuid.uuid4().hex, activity_id="1")


@pytest.fixture
def counted() -> tuple[ToolRegistry, list[str]]:
    """The built-ins plus test tools: a counting side effect, a failing and a slow tool."""
    effects: list[str] = []
    registry = default_registry().copy()

    def bump(context: ToolContext, label: str) -> str:
        """Count one effect.

        Args:
            context: Context.
            label: A label.
        """
        effects.append(label)
        return f"count={len(effects)} key={context.idempotency_key}"

    def broken(reason: str) -> str:
        """Fail.

        Args:
            reason: What goes wrong.
        """
        if reason == "expected":
            raise ToolError("the thing is missing; create it first")
        if reason == "timeout":
            raise TimeoutError("upstream API timed out")
        raise KeyError(reason)

    async def slow() -> str:
        """Take too long."""
        await asyncio.sleep(30)
        return "late"

    def big(size: int) -> str:
        """Return a long text.

        Args:
            size: Characters.
        """
        return "z" * size

    registry.register(bump, capabilities=[Capability.API_INTEGRATION], side_effects=True)
    registry.register(broken, capabilities=None)
    registry.register(slow, capabilities=None)
    registry.register(big, capabilities=None)
    return registry, effects


async def test_unknown_and_unavailable_tools_come_back_as_errors(
    make_activities: MakeActivities, make_invocation: MakeInvocation
) -> None:
    activities = make_activities()
    unknown = await activities.run(make_invocation("rm_rf"), idempotency_key=_key())
    assert unknown.is_error and unknown.tool_call_id == "call-1" and unknown.name == "rm_rf"
    assert unknown.content is not None and unknown.content.startswith("Unknown tool 'rm_rf'.")
    assert "calculator" in unknown.content
    denied = await activities.run(
        make_invocation("sql_query", '{"query": "SELECT 1"}', capabilities=["web_scraping"]),
        idempotency_key=_key(),
    )
    assert denied.is_error and denied.content is not None
    assert "'sql_query' is not available to this subtask (capabilities: web_scraping)" in (
        denied.content
    )
    assert "Available tools: calculator, get_shared_state, set_shared_state." in denied.content


async def test_bad_arguments_come_back_as_errors(
    make_activities: MakeActivities, make_invocation: MakeInvocation
) -> None:
    activities = make_activities()
    for arguments, expected in [
        ('{"expression": ', "not valid JSON"),
        ('{"expr": "1+1"}', "- expression: Field required\n- expr: Extra inputs"),
        ('"1+1"', "expected a JSON object"),
    ]:
        outcome = await activities.run(
            make_invocation("calculator", arguments), idempotency_key=_key()
        )
        assert outcome.is_error and outcome.content is not None
        assert expected in outcome.content, outcome.content


async def test_tool_failures_and_timeouts_come_back_as_errors(
    make_activities: MakeActivities,
    make_invocation: MakeInvocation,
    counted: tuple[ToolRegistry, list[str]],
) -> None:
    registry, _ = counted
    activities = make_activities(registry, tool_timeout_s=0.2)
    expected = await activities.run(
        make_invocation("broken", '{"reason": "expected"}'), idempotency_key=_key()
    )
    assert expected == ToolOutcome(
        tool_call_id="call-1",
        name="broken",
        content="Tool 'broken' failed: the thing is missing; create it first",
        is_error=True,
    )
    bug = await activities.run(
        make_invocation("broken", '{"reason": "oops"}'), idempotency_key=_key()
    )
    assert bug.is_error and bug.content == "Tool 'broken' failed: KeyError: 'oops'"
    own_timeout = await activities.run(
        make_invocation("broken", '{"reason": "timeout"}'), idempotency_key=_key()
    )
    assert own_timeout.content == "Tool 'broken' failed: TimeoutError: upstream API timed out"
    calc = await activities.run(
        make_invocation("calculator", '{"expression": "1/0"}'), idempotency_key=_key()
    )
    assert (
        calc.is_error
        and calc.content == "Tool 'calculator' failed: cannot compute: division by zero"
    )
    slow = await activities.run(make_invocation("slow"), idempotency_key=_key())
    assert slow.is_error and slow.content == "Tool 'slow' did not finish within 0.2 s."


async def test_results_run_and_large_outputs_go_to_the_blob_store(
    make_activities: MakeActivities,
    make_invocation: MakeInvocation,
    counted: tuple[ToolRegistry, list[str]],
    db_pool: asyncpg.Pool,
) -> None:
    registry, _ = counted
    activities = make_activities(registry, claim_check_bytes=1024)
    small = await activities.run(
        make_invocation("calculator", '{"expression": "factorial(10)"}'), idempotency_key=_key()
    )
    assert small == ToolOutcome(tool_call_id="call-1", name="calculator", content="3628800")
    at_limit = await activities.run(
        make_invocation("big", '{"size": 1024}'), idempotency_key=_key()
    )
    assert at_limit.content == "z" * 1024 and at_limit.content_ref is None
    large = await activities.run(make_invocation("big", '{"size": 1025}'), idempotency_key=_key())
    assert large.content is None and not large.is_error and large.content_ref is not None
    assert large.content_ref.size_bytes == 1025
    assert await BlobStore(db_pool).get_text(large.content_ref) == "z" * 1025


async def test_side_effects_run_once_per_idempotency_key(
    make_activities: MakeActivities,
    make_invocation: MakeInvocation,
    counted: tuple[ToolRegistry, list[str]],
    db_pool: asyncpg.Pool,
) -> None:
    registry, effects = counted
    activities = make_activities(registry)
    call = make_invocation("bump", '{"label": "first"}')
    key = _key()
    first = await activities.run(call, idempotency_key=key)
    again = await activities.run(call, idempotency_key=key)  # a retried activity
    assert effects == ["first"]
    assert first == again and first.content == f"count=1 key={key}"
    row = await db_pool.fetchval("SELECT result FROM tool_effects WHERE idempotency_key = $1", key)
    assert ToolOutcome.model_validate(row) == first
    other = await activities.run(call, idempotency_key=_key())  # another call: runs
    assert effects == ["first", "first"] and other.content is not None
    assert other.content.startswith("count=2")


async def test_a_retried_set_shared_state_returns_the_record_without_writing_again(
    make_activities: MakeActivities, make_invocation: MakeInvocation, db_pool: asyncpg.Pool
) -> None:
    activities = make_activities()
    key = _key()
    set_one = make_invocation("set_shared_state", '{"key": "k", "value": 1}', task_id="task-idem")
    await activities.run(set_one, idempotency_key=key)
    # Same key, different arguments: proves the recorded outcome is returned and nothing runs.
    set_two = make_invocation("set_shared_state", '{"key": "k", "value": 2}', task_id="task-idem")
    replay = await activities.run(set_two, idempotency_key=key)
    assert replay.content == "stored 'k' (1 bytes of JSON)"
    value = await db_pool.fetchval(
        "SELECT value FROM shared_state WHERE task_id = 'task-idem' AND key = 'k'"
    )
    assert value == 1
    get = await activities.run(
        make_invocation("get_shared_state", '{"key": "k"}', task_id="task-idem"),
        idempotency_key=_key(),
    )
    assert get.content is not None and json.loads(get.content)["value"] == 1
    read_only_key = _key()  # tools without side effects are not recorded
    await activities.run(
        make_invocation("calculator", '{"expression": "1"}'), idempotency_key=read_only_key
    )
    assert (
        await db_pool.fetchval(
            "SELECT count(*) FROM tool_effects WHERE idempotency_key = $1", read_only_key
        )
        == 0
    )


async def test_a_task_id_that_cannot_name_a_workspace_is_refused(
    make_activities: MakeActivities, make_invocation: MakeInvocation
) -> None:
    outcome = await make_activities().run(
        make_invocation("list_files", "{}", task_id="../escape"), idempotency_key=_key()
    )
    assert outcome.is_error and outcome.content == "task id '../escape' cannot name a workspace"


def _raising(error: BaseException) -> Callable[[], Awaitable[str]]:
    async def fail() -> str:
        """Fail with a given exception."""
        raise error

    return fail


INFRASTRUCTURE_ERRORS: list[BaseException] = [
    asyncpg.PostgresConnectionError("connection to the server was lost"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.InterfaceError("pool is closed"),
    ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
    ConnectionResetError(104, "Connection reset by peer"),
    OSError("Multiple exceptions: [Errno 111] Connect call failed ('127.0.0.1', 5432)"),
    OSError(28, "No space left on device"),
]
MODEL_ERRORS: list[tuple[BaseException, str]] = [
    (ValueError("bad input"), "Tool 'fail' failed: ValueError: bad input"),
    (TimeoutError("upstream API timed out"), "TimeoutError: upstream API timed out"),
    (FileNotFoundError(2, "No such file or directory", "in.csv"), "FileNotFoundError"),
    (PermissionError(13, "Permission denied", "secret.txt"), "PermissionError"),
    (asyncpg.UndefinedTableError('relation "nope" does not exist'), "UndefinedTableError"),
    (asyncpg.exceptions._base.DataError("invalid input for query argument $1"), "DataError"),
]


@pytest.mark.parametrize("error", INFRASTRUCTURE_ERRORS, ids=lambda e: type(e).__name__)
async def test_infrastructure_errors_fail_the_activity_so_temporal_retries(
    make_activities: MakeActivities, make_invocation: MakeInvocation, error: BaseException
) -> None:
    registry = default_registry().copy()
    registry.register(_raising(error), capabilities=None, name="fail")
    with pytest.raises(type(error)) as caught:
        await make_activities(registry).run(make_invocation("fail"), idempotency_key=_key())
    assert caught.value is error


@pytest.mark.parametrize(("error", "shown"), MODEL_ERRORS, ids=lambda e: type(e).__name__)
async def test_other_errors_inside_a_tool_go_back_to_the_model(
    make_activities: MakeActivities,
    make_invocation: MakeInvocation,
    error: BaseException,
    shown: str,
) -> None:
    registry = default_registry().copy()
    registry.register(_raising(error), capabilities=None, name="fail")
    outcome = await make_activities(registry).run(make_invocation("fail"), idempotency_key=_key())
    assert outcome.is_error and outcome.content is not None
    assert outcome.content.startswith("Tool 'fail' failed: ") and shown in outcome.content


async def test_shared_state_during_a_postgres_outage_fails_the_activity(
    make_invocation: MakeInvocation, tool_settings: Settings
) -> None:
    """get_shared_state on a pool whose server is gone: an OSError Temporal must retry."""
    gone = await asyncpg.create_pool(
        f"postgresql://postgres@127.0.0.1:{free_port()}/mahsm", min_size=0, max_size=1
    )
    assert gone is not None
    activities = ToolActivities(
        pool=gone,
        settings=tool_settings,
        blobs=BlobStore(gone, threshold_bytes=tool_settings.claim_check_bytes),
    )
    try:
        with pytest.raises(OSError):
            await activities.run(
                make_invocation("get_shared_state", '{"key": "k"}'), idempotency_key=_key()
            )
    finally:
        await gone.close()
