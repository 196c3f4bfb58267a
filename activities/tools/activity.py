"""The `tool_execute` activity: run one tool call of an agent, safely and at most once.

Every problem the model can fix or should know about (unknown tool, a tool its subtask may
not use, bad arguments, a failing or slow tool) comes back as `ToolOutcome(is_error=True)`
with a message for the model; the activity itself fails only on infrastructure errors
(Postgres down or restarting, a dropped connection, a network error: see
`mahsm.activities.tools.failures`), which Temporal retries.

Side-effecting tools are recorded in `tool_effects` under the call's idempotency key, so a
retried activity returns the recorded outcome instead of repeating the effect.

Every result is cut at `MAHSM_TOOL_OUTPUT_MAX_BYTES` (with a note to the model), and every
text that leaves the activity (result, error, failure) has the worker's secrets redacted.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from mahsm.activities import telemetry
from mahsm.activities.blobs import BlobStore
from mahsm.activities.tools.failures import is_infrastructure_error
from mahsm.activities.tools.output import bound_output
from mahsm.activities.tools.registry import (
    RegisteredTool,
    ToolArgumentsError,
    ToolContext,
    ToolError,
    ToolRegistry,
    default_registry,
)
from mahsm.contracts.llm import ToolCall
from mahsm.contracts.tools import ToolInvocation, ToolOutcome
from mahsm.redaction import redact_output, redact_text, register_settings
from mahsm.settings import Settings

MAX_ERROR_CHARS = 4000
_TIMEOUT_MARGIN_S = 2.0
TASK_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]{1,200}$")


def idempotency_key(*, workflow_id: str, run_id: str, activity_id: str) -> str:
    """The key of one tool call: stable across retries of its activity, unique otherwise.

    The run id is part of it because activity ids restart at 1 in every run: without it, the
    calls of a workflow that continued-as-new would collide with those of its previous run.

    Args:
        workflow_id: The calling workflow's id.
        run_id: The calling workflow's run id.
        activity_id: The activity's id within that run.

    Returns:
        `<workflow_id>:<run_id>:<activity_id>`.
    """
    return f"{workflow_id}:{run_id}:{activity_id}"


def _error(call: ToolCall, message: str) -> ToolOutcome:
    if len(message) > MAX_ERROR_CHARS:
        message = message[:MAX_ERROR_CHARS] + " ... (message truncated)"
    return ToolOutcome(
        tool_call_id=call.id, name=call.name, content=redact_text(message), is_error=True
    )


class ToolActivities:
    """The tool activity, built once per worker with the worker's pools, settings and blobs.

    `pool` is the MAHSM database (tool effects, shared state, blobs); `sql_pool`, when the
    worker has one, is the separate database `sql_query` reads (`MAHSM_SQL_TOOL_DATABASE_URL`).
    """

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        settings: Settings,
        blobs: BlobStore,
        registry: ToolRegistry | None = None,
        sql_pool: asyncpg.Pool | None = None,
    ) -> None:
        if sql_pool is not None and sql_pool is pool:
            raise ValueError("sql_pool must not be the MAHSM pool: agents would read every task")
        self.pool = pool
        self.settings = settings
        self.blobs = blobs
        self.registry = registry if registry is not None else default_registry()
        self.sql_pool = sql_pool
        register_settings(settings)  # secrets read from a .env file are redacted too

    @activity.defn(name="tool_execute")
    async def execute(self, invocation: ToolInvocation) -> ToolOutcome:
        """Run the tool call of `invocation` and return what goes back to the model.

        Args:
            invocation: The call, its task and subtask, and the subtask's capabilities.

        Returns:
            The outcome; large outputs travel as `content_ref` (claim check).
        """
        info = activity.info()
        key = idempotency_key(
            workflow_id=info.workflow_id or "",
            run_id=info.workflow_run_id or "",
            activity_id=info.activity_id,
        )
        timeout_s = self.settings.tool_timeout_s
        if info.start_to_close_timeout is not None:
            # End the tool (with an error the model sees) before Temporal times the attempt out.
            budget = info.start_to_close_timeout.total_seconds()
            timeout_s = min(timeout_s, max(budget * 0.5, budget - _TIMEOUT_MARGIN_S))
        try:
            known = self.registry.get(invocation.call.name) is not None
            content = self.settings.trace_content
            with telemetry.tool_span(invocation, content=content, known=known) as traced:
                outcome = await self.run(invocation, idempotency_key=key, timeout_s=timeout_s)
                traced.record(outcome)
                return outcome
        except ApplicationError:
            raise
        except Exception as error:
            # Infrastructure failures are retried; their text reaches history, so redact it
            # (a connection error may quote a URL) and drop the original exception chain.
            raise ApplicationError(
                redact_text(f"tool '{invocation.call.name}': {type(error).__name__}: {error}"),
                type=type(error).__name__,
            ) from None

    async def run(
        self, invocation: ToolInvocation, *, idempotency_key: str, timeout_s: float | None = None
    ) -> ToolOutcome:
        """The body of `tool_execute`, with the idempotency key given explicitly.

        Args:
            invocation: The call, its task and subtask, and the subtask's capabilities.
            idempotency_key: Identifies the call across retries (see `idempotency_key`).
            timeout_s: How long the tool may run; `settings.tool_timeout_s` when None.

        Returns:
            The outcome of the call; for a side-effecting tool whose outcome is already
            recorded under `idempotency_key`, that recorded outcome.
        """
        call = invocation.call
        item = self.registry.get(call.name)
        if item is None or not item.allowed_for(invocation.capabilities):
            return _error(call, self._unavailable(invocation, known=item is not None))
        try:
            arguments = item.parse_arguments(await self._arguments(call))
        except ToolArgumentsError as error:
            return _error(call, str(error))
        if item.side_effects and not invocation.side_effects:
            return _error(
                call,
                f"tool '{call.name}' changes the world and is off in this run"
                " (options.side_effects is false, as in a shadow experiment run); answer"
                " without it",
            )
        if not TASK_ID_PATTERN.match(invocation.task_id):
            return _error(call, f"task id '{invocation.task_id}' cannot name a workspace")
        if item.side_effects:
            recorded = await self._recorded(idempotency_key)
            if recorded is not None:
                activity.logger.info("tool %s: returning recorded outcome", call.name)
                return recorded
        context = ToolContext(
            task_id=invocation.task_id,
            subtask_id=invocation.subtask_id,
            workspace=self.settings.workspace_root() / invocation.task_id,
            pool=self.pool,
            blobs=self.blobs,
            idempotency_key=idempotency_key,
            settings=self.settings,
            sql_pool=self.sql_pool,
        )
        limit = self.settings.tool_timeout_s if timeout_s is None else timeout_s
        outcome = await self._call(item, context, arguments, call, limit)
        if item.side_effects:
            outcome = await self._record(idempotency_key, outcome)
        return outcome

    async def _arguments(self, call: ToolCall) -> str:
        """The call's JSON arguments, read from the blob store when they came by reference."""
        if call.arguments_ref is None:
            return call.arguments
        try:
            return await self.blobs.get_text(call.arguments_ref)
        except LookupError as error:
            raise ApplicationError(
                f"tool '{call.name}': {error}; the arguments' claim check points at nothing."
                " Fix: store the blob before passing its reference",
                type="ToolArgumentsMissing",
                non_retryable=True,
            ) from None

    def _unavailable(self, invocation: ToolInvocation, *, known: bool) -> str:
        names = [item.name for item in self.registry.tools_for(invocation.capabilities)]
        offered = ", ".join(names) or "none"
        if known:
            caps = ", ".join(sorted(invocation.capabilities)) or "none"
            return (
                f"Tool '{invocation.call.name}' is not available to this subtask"
                f" (capabilities: {caps}). Available tools: {offered}."
            )
        reason = self.registry.unavailable_reason(invocation.call.name)
        if reason is not None:
            return f"Tool '{invocation.call.name}' is unavailable: {reason}"
        return f"Unknown tool '{invocation.call.name}'. Available tools: {offered}."

    async def _call(
        self,
        item: RegisteredTool,
        context: ToolContext,
        arguments: dict[str, Any],
        call: ToolCall,
        limit: float,
    ) -> ToolOutcome:
        scope = asyncio.timeout(limit)
        try:
            async with scope:
                content = await item.call(context, arguments)
        except ToolError as error:
            return _error(call, f"Tool '{call.name}' failed: {error}")
        except Exception as error:
            if isinstance(error, TimeoutError) and scope.expired():
                return _error(call, f"Tool '{call.name}' did not finish within {limit:g} s.")
            if is_infrastructure_error(error):
                # Postgres down, a dropped connection...: fail the attempt, Temporal retries it.
                activity.logger.warning(
                    "tool %s: infrastructure error, failing the attempt: %s: %s",
                    call.name,
                    type(error).__name__,
                    error,
                )
                raise
            # A bug in the tool: tell the model, keep the traceback in the worker's log.
            activity.logger.warning("tool %s raised", call.name, exc_info=True)
            return _error(call, f"Tool '{call.name}' failed: {type(error).__name__}: {error}")
        return await self._outcome(call, content)

    async def _outcome(self, call: ToolCall, content: str) -> ToolOutcome:
        bounded = bound_output(content, self.settings.tool_output_max_bytes)
        inline, ref = await self.blobs.offload_text(redact_output(bounded))
        return ToolOutcome(tool_call_id=call.id, name=call.name, content=inline, content_ref=ref)

    async def _recorded(self, key: str) -> ToolOutcome | None:
        result = await self.pool.fetchval(
            "SELECT result FROM tool_effects WHERE idempotency_key = $1", key
        )
        return None if result is None else ToolOutcome.model_validate(result)

    async def _record(self, key: str, outcome: ToolOutcome) -> ToolOutcome:
        """Record `outcome` unless an earlier attempt did; return the one that is recorded."""
        await self.pool.execute(
            "INSERT INTO tool_effects (idempotency_key, result) VALUES ($1, $2)"
            " ON CONFLICT (idempotency_key) DO NOTHING",
            key,
            outcome.model_dump(mode="json"),
        )
        recorded = await self._recorded(key)
        return recorded if recorded is not None else outcome
