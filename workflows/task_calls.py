"""Every LLM and tool call of a task's workflow (engine v2): where, how long, what it carries.

- An LLM call carries the task's pending projection change (`LLMRequest.projection`), one
  such call at a time; the activity writes it while the provider answers, so keeping
  Postgres current costs no activity of its own. A change the activity could not write is
  taken back and carried by the next call, or by the final write.
- Agent calls pass the task's one budget gate: while a call of unknown size could overshoot
  the budget, calls run one at a time, so the task overshoots by at most one call.
- Every call is bounded in total time (`schedule_to_close`): by the subtask's deadline for
  agent calls, and by `llm_retry_s` for any LLM call, with an error naming model and fix.
- A call with fallback models (`LLMRequest.fallback`) tries each model as its own activity
  (`<id>`, then `<id>.m1`, `<id>.m2`...), `fallback_attempts` attempts each: the next model
  serves the call when one's retries are exhausted or its circuit is open (`CircuitOpen`); a
  non-retryable error (a 4xx) fails the call as without fallback. Which model served, and
  every circuit transition the activity reports, go to the task's event log. A call without
  fallback schedules exactly what it did before fallback chains existed (replay).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState, TimeoutType
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

with workflow.unsafe.imports_passed_through():
    from mahsm.activities.llm.activity import LLMActivities
    from mahsm.activities.tools.activity import ToolActivities
    from mahsm.contracts.engine import EngineDefaults
    from mahsm.contracts.llm import LLMRequest, LLMResponse
    from mahsm.contracts.task import Budget, Usage
    from mahsm.contracts.tools import ToolInvocation, ToolOutcome
    from mahsm.workflows.failures import failure_message
    from mahsm.workflows.model_fallback import ChainOutOfTime, breaker_notes, serve_on_chain
    from mahsm.workflows.pool_router import POOL_PICKUP_S
    from mahsm.workflows.retry import LLM_RETRY, TOOL_RETRY, llm_heartbeat_timeout
    from mahsm.workflows.task_recorder import TaskRecorder

TOOL_TIMEOUT_MARGIN_S = 10.0


class SubtaskDeadline(Exception):
    """A subtask's time ran out while one of its calls was waiting or running."""


def timeout_type(error: BaseException) -> TimeoutType | None:
    """The Temporal timeout that ended an activity, if a timeout did."""
    cause = error.cause if isinstance(error, ActivityError) else None
    return cause.type if isinstance(cause, TemporalTimeoutError) else None


def out_of_time(error: ActivityError) -> bool:
    """True when the activity's total time (`schedule_to_close`) ran out.

    Either during an attempt, or because the next retry would not have fit in it.
    """
    kind = timeout_type(error)
    if kind == TimeoutType.SCHEDULE_TO_START:  # never picked up: re-routed, not out of time
        return False
    return kind == TimeoutType.SCHEDULE_TO_CLOSE or error.retry_state == RetryState.TIMEOUT


class BudgetGate:
    """One budget for every agent of a task, however many run at once.

    A call may start while the task's usage, plus the largest call seen so far for every call
    in flight and this one, stays inside the budget. Until one call's size is known, and
    whenever the budget is that close, calls run one at a time: the budget is overshot by at
    most one call (one larger than any before it may overshoot by its own size).
    """

    def __init__(self, budget: Budget | None, recorder: TaskRecorder) -> None:
        self._budget = budget
        self._recorder = recorder
        self._in_flight = 0
        self._largest: Usage | None = None

    def spent(self) -> str | None:
        """Why the task may make no more agent calls, or None."""
        if self._budget is None:
            return None
        return self._budget.exceeded_by(self._recorder.state.usage)

    async def admit(self) -> None:
        """Wait until a call may start; raises `BudgetSpent` once the budget is spent."""
        if self._budget is not None:
            # Re-checked on waking: agents woken together must not all take the same room.
            while not self._may_start():
                await workflow.wait_condition(self._may_start)
            reason = self.spent()
            if reason:
                raise BudgetSpent(reason)
        self._in_flight += 1

    def release(self, usage: Usage | None) -> None:
        """A call admitted by `admit` ended, having used `usage` (None when unknown)."""
        self._in_flight -= 1
        if usage is not None and (
            self._largest is None
            or usage.total_tokens > self._largest.total_tokens
            or usage.cost_usd > self._largest.cost_usd
        ):
            largest = self._largest or Usage()
            self._largest = Usage(
                input_tokens=max(largest.input_tokens, usage.input_tokens),
                output_tokens=max(largest.output_tokens, usage.output_tokens),
                cost_usd=max(largest.cost_usd, usage.cost_usd),
            )

    def _may_start(self) -> bool:
        assert self._budget is not None
        if self.spent() or self._in_flight == 0:
            return True
        if self._largest is None:
            return False
        projected = self._recorder.state.usage
        for _ in range(self._in_flight + 1):
            projected = projected + self._largest
        return self._budget.exceeded_by(projected) is None


class BudgetSpent(Exception):
    """The task's budget is spent: no more agent calls."""


class TaskCalls:
    """Runs the task's LLM and tool calls; counts those in flight for the projection flusher."""

    def __init__(self, *, recorder: TaskRecorder, defaults: EngineDefaults, budget: Budget | None):
        self._recorder = recorder
        self._defaults = defaults
        self.budget = BudgetGate(budget, recorder)
        self.in_flight = 0
        self._carrying = False

    @contextmanager
    def running(self) -> Iterator[None]:
        """Counts work in flight (a call or a child) that will wake the workflow when done."""
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    async def llm(
        self,
        request: LLMRequest,
        *,
        activity_id: str,
        summary: str,
        queue: str | None = None,
        deadline: datetime | None = None,
        budgeted: bool = False,
    ) -> LLMResponse:
        """One LLM call, on its fallback models if need be; its usage is added to the task's.

        See the module docstring. The budget gate admits the call once, whatever model
        serves it.
        """
        retry_s = self._defaults.llm_retry_s
        total_s = min(retry_s, _remaining(deadline))
        sid = request.subtask_id
        if budgeted:
            await self.budget.admit()
        # One write in flight at a time: calls started together do not each carry one.
        write = None if self._carrying else self._recorder.take_write()
        if write is not None:
            request = request.model_copy(update={"projection": write})
            self._carrying = True
        response: LLMResponse | None = None
        try:
            with self.running():
                if request.fallback:
                    response = await serve_on_chain(
                        request,
                        attempt=lambda single, suffix, left_s, retry: self._complete(
                            single, activity_id=activity_id + suffix, queue=queue,
                            summary=f"{summary} ({single.model})" if suffix else summary,
                            total_s=left_s, retry=retry,
                        ),
                        note=lambda text: self._recorder.note(text, subtask_id=sid),
                        ends_call=_ends_call,
                        attempts=self._defaults.fallback_attempts,
                        summary=summary,
                        total_s=total_s,
                    )  # fmt: skip
                else:
                    response = await self._complete(
                        request, activity_id=activity_id, summary=summary, queue=queue,
                        total_s=total_s, retry=LLM_RETRY,
                    )  # fmt: skip
        except ActivityError as error:
            if not request.fallback:  # a chain logs each model's failure itself
                for text in breaker_notes(error):
                    self._recorder.note(text, subtask_id=sid)
            if out_of_time(error):
                if total_s < retry_s:
                    raise SubtaskDeadline() from error
                models = ", ".join([request.model, *request.fallback])
                raise ApplicationError(
                    f"LLM call '{summary}' to {models} got no usable answer within"
                    f" {retry_s:g}s of retries; last error: {failure_message(error)}. Check"
                    " that the provider is reachable and the model name and key are right"
                    " (the worker's OPENAI_BASE_URL / OPENAI_API_KEY / ANTHROPIC_API_KEY),"
                    " or raise MAHSM_LLM_RETRY_S",
                    type="LLMRetriesExhausted",
                    non_retryable=True,
                ) from error
            raise
        except ChainOutOfTime as error:
            if total_s < retry_s:
                raise SubtaskDeadline() from error
            raise ApplicationError(
                f"LLM call '{summary}' found no model of its chain to answer within"
                f" {retry_s:g}s; raise MAHSM_LLM_RETRY_S",
                type="LLMRetriesExhausted",
                non_retryable=True,
            ) from error
        finally:
            if write is not None:
                self._carrying = False
                if not (response and response.projection_written):
                    self._recorder.requeue(write)
            if budgeted:
                self.budget.release(response.usage if response else None)
        self._recorder.add_usage(response.usage)
        for note in response.notes:  # e.g. a circuit closed by this call's probe
            self._recorder.note(note, subtask_id=sid)
        return response

    async def _complete(
        self,
        request: LLMRequest,
        *,
        activity_id: str,
        summary: str,
        queue: str | None,
        total_s: float,
        retry: RetryPolicy,
    ) -> LLMResponse:
        return await workflow.execute_activity_method(
            LLMActivities.complete,
            request,
            activity_id=activity_id,
            task_queue=queue,
            start_to_close_timeout=timedelta(seconds=self._defaults.llm_timeout_s),
            schedule_to_close_timeout=timedelta(seconds=total_s),
            schedule_to_start_timeout=_pickup(queue),
            heartbeat_timeout=llm_heartbeat_timeout(self._defaults.llm_timeout_s),
            retry_policy=retry,
            summary=summary,
        )

    async def tool(
        self,
        invocation: ToolInvocation,
        *,
        activity_id: str,
        queue: str,
        deadline: datetime | None,
    ) -> ToolOutcome:
        """One tool call on the pool's queue, bounded by the subtask's deadline."""
        remaining = _remaining(deadline)
        try:
            with self.running():
                return await workflow.execute_activity_method(
                    ToolActivities.execute,
                    invocation,
                    activity_id=activity_id,
                    task_queue=queue,
                    # Above the tool's own limit, so a slow tool reports "did not finish" to
                    # the model instead of being retried by Temporal.
                    start_to_close_timeout=timedelta(
                        seconds=self._defaults.tool_timeout_s + TOOL_TIMEOUT_MARGIN_S
                    ),
                    schedule_to_close_timeout=timedelta(seconds=remaining),
                    schedule_to_start_timeout=_pickup(queue),
                    retry_policy=TOOL_RETRY,
                    summary=f"tool {invocation.call.name}: {invocation.subtask_id}",
                )
        except ActivityError as error:
            if out_of_time(error):
                raise SubtaskDeadline() from error
            raise


def _ends_call(error: ActivityError) -> bool:
    """An error that ends an LLM call on any model: no worker took it, or its time is spent."""
    return timeout_type(error) == TimeoutType.SCHEDULE_TO_START or out_of_time(error)


def _remaining(deadline: datetime | None) -> float:
    if deadline is None:
        return 10 * 365 * 24 * 3600.0
    remaining = (deadline - workflow.now()).total_seconds()
    if remaining <= 0:
        raise SubtaskDeadline()
    return remaining


def _pickup(queue: str | None) -> timedelta | None:
    # Calls on a pool's queue must be taken within this time, or the pool is looked up again.
    return timedelta(seconds=POOL_PICKUP_S) if queue is not None else None
