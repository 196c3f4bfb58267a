"""A tiny workflow calling `run_hook` the way the task workflow does: start, a failed step, end."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from mahsm.activities.engine import EngineActivities
    from mahsm.contracts.engine import DefaultsRequest
    from mahsm.contracts.middleware import (
        MiddlewareHook,
        MiddlewareHookResult,
        RunInfo,
        StepError,
        StepInfo,
    )
    from mahsm.workflows.middleware_hooks import run_hook


class HookRun(BaseModel):
    """Input: the middleware the "task" chose (None: the worker default)."""

    chosen: list[str] | None = None


class HookRunResult(BaseModel):
    results: list[MiddlewareHookResult | None]


@workflow.defn
class HookProbeWorkflow:
    """Reads the worker's defaults, then runs the three hooks like a task with one failure."""

    @workflow.run
    async def run(self, request: HookRun) -> HookRunResult:
        defaults = await workflow.execute_local_activity_method(
            EngineActivities.engine_defaults,
            DefaultsRequest(),
            start_to_close_timeout=timedelta(seconds=10),
        )
        run = RunInfo(task_id=workflow.info().workflow_id, user_id="alice")
        chosen = request.chosen
        started = await run_hook(defaults, chosen, MiddlewareHook.ON_RUN_START, run)
        failed = await run_hook(
            defaults,
            chosen,
            MiddlewareHook.ON_STEP_ERROR,
            run,
            step=StepInfo(task_id=run.task_id, step_id="s1", kind="llm", model="scripted/x"),
            error=StepError(type="LLMBadRequestError", message="bad prompt"),
        )
        end = run.model_copy(update={"status": "failed", "error": "step s1 failed"})
        ended = await run_hook(defaults, chosen, MiddlewareHook.ON_RUN_END, end)
        return HookRunResult(results=[started, failed, ended])
