"""Workflow side of middleware run/step hooks: schedule `middleware_hook` only when needed.

The task's middleware is `TaskOptions.middleware`, or the worker default when unset
(`EngineDefaults.middleware`). When none of it defines a run or step hook
(`EngineDefaults.hooked_middleware`), `run_hook` returns without any command, so tasks
without such middleware keep their histories unchanged. Activity ids are deterministic:
`hook-on_run_start`, `hook-on_run_end`, `hook-on_step_error-<step id>`.

A hook that aborts (`AbortedByMiddleware`), names unknown middleware, or whose critical
middleware keeps failing raises `ActivityError` to the caller, which decides what it means
for the run (e.g. an abort at `on_run_start` fails the task).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from mahsm.activities.llm.middleware.activity import MiddlewareActivities
    from mahsm.contracts.engine import EngineDefaults
    from mahsm.contracts.middleware import (
        MiddlewareHook,
        MiddlewareHookRequest,
        MiddlewareHookResult,
        RunInfo,
        StepError,
        StepInfo,
    )
    from mahsm.contracts.task import TaskState

HOOK_TIMEOUT = timedelta(seconds=30)
# A hook may call a service (an audit log, a DLP API): a few quick retries, then the caller
# hears of it.
HOOK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=3,
)


def run_info(state: TaskState) -> RunInfo:
    """The task as run hooks see it; its final status and error once it has ended."""
    return RunInfo(
        task_id=state.task_id,
        user_id=state.user_id,
        pipeline=state.pipeline,
        status=state.status.value if state.status.is_terminal else None,
        error=state.error if state.status.is_terminal else None,
    )


def hooked_middleware(defaults: EngineDefaults, chosen: Sequence[str] | None) -> list[str]:
    """The names (with modes) of the effective middleware that define a run or step hook."""
    names = defaults.middleware if chosen is None else chosen
    hooked = set(defaults.hooked_middleware)
    return [name for name in names if name.partition(":")[0] in hooked]


async def run_hook(
    defaults: EngineDefaults,
    chosen: Sequence[str] | None,
    hook: MiddlewareHook,
    run: RunInfo,
    *,
    step: StepInfo | None = None,
    error: StepError | None = None,
) -> MiddlewareHookResult | None:
    """Run `hook` of the effective middleware in the `middleware_hook` activity.

    Args:
        defaults: The task's `EngineDefaults` (worker default and hooked middleware).
        chosen: `TaskOptions.middleware` (None: the worker default; []: none).
        hook: Which hook.
        run: The run; for `on_run_end`, with its final `status` (and `error`).
        step: The failed step, for `on_step_error`.
        error: Why it failed, for `on_step_error`.

    Returns:
        What ran, or None when no chosen middleware defines a hook (nothing was scheduled).

    Raises:
        ActivityError: The hook aborted, named unknown middleware, or a critical
            middleware kept failing.
    """
    names = hooked_middleware(defaults, chosen)
    if not names:
        return None
    suffix = f"-{step.step_id}" if step is not None else ""
    return await workflow.execute_activity_method(
        MiddlewareActivities.run_hook,
        MiddlewareHookRequest(hook=hook, middleware=names, run=run, step=step, error=error),
        activity_id=f"hook-{hook.value}{suffix}",
        start_to_close_timeout=HOOK_TIMEOUT,
        retry_policy=HOOK_RETRY,
        summary=f"middleware {hook.value}",
    )
