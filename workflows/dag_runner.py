"""Runs a plan's DAG inside `TaskWorkflow`, every subtask a child workflow (engine v1).

Kept unchanged for histories recorded before `engine-v2` (inline agents,
`workflows/graph_runner.py`); new tasks never take this path.

Each subtask starts as soon as its dependencies are done (no barrier between levels), as a
child `AgentWorkflow` on its capability pool's queue, at most `max_parallel` at once, higher
priority first.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ChildWorkflowError,
    is_cancelled_exception,
)
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

with workflow.unsafe.imports_passed_through():
    from mahsm.contracts.engine import (
        AgentInput,
        DependencyOutput,
        EngineDefaults,
    )
    from mahsm.contracts.task import (
        Subtask,
        SubtaskState,
        SubtaskStatus,
        TaskRequest,
        Usage,
    )
    from mahsm.plan_validation import descendants
    from mahsm.workflows.agent_workflow import AgentWorkflow
    from mahsm.workflows.failures import failure_message, usage_of_failure
    from mahsm.workflows.payloads import OUTPUT_INLINE_BYTES, store_text
    from mahsm.workflows.pool_lookup import PoolLookup
    from mahsm.workflows.task_recorder import KEEP, TaskRecorder


# Histories recorded before max_parallel defaulted to "every ready subtask" carry 4.
LEGACY_MAX_PARALLEL = 4


class DagRunner:
    """Schedules the subtasks of one plan and records every change through the recorder."""

    def __init__(
        self, *, recorder: TaskRecorder, request: TaskRequest, defaults: EngineDefaults
    ) -> None:
        self._recorder = recorder
        self._request = request
        self._defaults = defaults
        self._running: dict[str, asyncio.Task[None]] = {}
        self._wait_s = request.options.capability_wait_s or defaults.capability_wait_s
        self._pools = PoolLookup(recorder=recorder, wait_s=self._wait_s)
        self._budget_stop: str | None = None
        self._cancelling = False
        self._cancelled_outside: list[str] = []
        assert recorder.state.plan is not None
        self._order = {s.id: i for i, s in enumerate(recorder.state.plan.subtasks)}
        self._max_parallel = request.options.max_parallel or LEGACY_MAX_PARALLEL

    async def run(self) -> str | None:
        """Run until no subtask can start; returns why the task failed, or None."""
        while True:
            self._start_ready()
            if not self._running:
                break
            await workflow.wait_condition(lambda: any(t.done() for t in self._running.values()))
            for subtask_id in [sid for sid, t in self._running.items() if t.done()]:
                self._running.pop(subtask_id).result()
        return self._failure_reason()

    async def cancel_all(self) -> None:
        """Cancel running subtasks (their agents and activities) and wait for them to stop."""
        self._cancelling = True
        self._pools.cancel_all()
        for task in self._running.values():
            task.cancel()
        for task in self._running.values():
            try:
                await task
            except (asyncio.CancelledError, ChildWorkflowError, ActivityError):
                pass
        self._running.clear()

    def _start_ready(self) -> None:
        state = self._recorder.state
        reason = self._budget_reason()
        if reason:
            self._budget_stop = reason
            for item in state.subtasks:
                if (
                    item.result.status == SubtaskStatus.PENDING
                    and item.subtask.id not in self._running
                ):
                    self._recorder.update_subtask(
                        item.subtask.id,
                        status=SubtaskStatus.CANCELLED,
                        error=f"not started: {reason}",
                        finished_at=workflow.now(),
                    )
            return
        done = self._settled()
        ready = [
            item.subtask
            for item in state.subtasks
            if item.result.status == SubtaskStatus.PENDING
            and item.subtask.id not in self._running
            and all(d in done for d in item.subtask.depends_on)
        ]
        ready.sort(key=lambda s: (-s.priority, self._order[s.id]))
        free = self._max_parallel - len(self._running)
        for subtask in ready[: max(free, 0)]:
            self._running[subtask.id] = asyncio.create_task(self._run_subtask(subtask))

    def _settled(self) -> set[str]:
        """Subtasks whose dependents may start."""
        return {
            item.subtask.id
            for item in self._recorder.state.subtasks
            if item.result.status == SubtaskStatus.COMPLETED
        }

    def _budget_reason(self) -> str | None:
        budget = self._request.options.budget
        return budget.exceeded_by(self._recorder.state.usage) if budget else None

    def adopt_plan(self) -> None:
        """Take up a revised plan (`TaskRecorder.revise_plan`): its new subtasks run next."""
        self._order = {item.subtask.id: i for i, item in enumerate(self._recorder.state.subtasks)}

    def stuck(self) -> list[str]:
        """Failed and blocked subtasks of the current plan, when they alone stopped the task.

        Empty when the budget stopped it or a subtask was cancelled from outside: replanning
        would not help (docs/replanning.md).
        """
        if self._budget_stop or self._cancelled_outside:
            return []
        return [
            item.subtask.id
            for item in self.current()
            if item.result.status in (SubtaskStatus.FAILED, SubtaskStatus.BLOCKED)
            and item.subtask.is_critical
        ]

    def current(self) -> list[SubtaskState]:
        """The subtasks of the current plan (a revision leaves earlier failures outside it)."""
        plan = self._recorder.state.plan
        assert plan is not None
        ids = {subtask.id for subtask in plan.subtasks}
        return [item for item in self._recorder.state.subtasks if item.subtask.id in ids]

    def _failure_reason(self) -> str | None:
        failed = [
            f"subtask '{i.subtask.id}' failed: {i.result.error}"
            for i in self.current()
            if i.result.status == SubtaskStatus.FAILED and i.subtask.is_critical
        ]
        failed += [f"subtask '{sid}' was cancelled" for sid in self._cancelled_outside]
        if self._budget_stop:
            failed.append(f"budget exceeded: {self._budget_stop}")
        return "; ".join(failed) or None

    def _block_descendants(self, subtask_id: str) -> None:
        plan = self._recorder.state.plan
        assert plan is not None
        for blocked in sorted(descendants(plan, subtask_id), key=self._order.__getitem__):
            if self._recorder.state.subtask(blocked).result.status == SubtaskStatus.PENDING:
                self._recorder.update_subtask(
                    blocked,
                    status=SubtaskStatus.BLOCKED,
                    error=f"blocked: dependency '{subtask_id}' failed",
                )

    def _cancelled(self, subtask_id: str, *, error: str | None = None) -> None:
        self._recorder.update_subtask(
            subtask_id,
            status=SubtaskStatus.CANCELLED,
            error=error,
            finished_at=workflow.now(),
            waiting_for=None,
        )

    def _fail(self, subtask_id: str, message: str, usage: Usage | None = None) -> None:
        if usage is not None:
            self._recorder.add_usage(usage)
        self._recorder.update_subtask(
            subtask_id,
            status=SubtaskStatus.FAILED,
            error=message,
            finished_at=workflow.now(),
            waiting_for=None,
            usage=usage if usage is not None else KEEP,
        )
        self._block_descendants(subtask_id)

    def _dependencies(self, subtask: Subtask) -> list[DependencyOutput]:
        state = self._recorder.state
        return [
            DependencyOutput(
                subtask_id=dep,
                description=state.subtask(dep).subtask.description,
                output=state.subtask(dep).result.output,
                output_ref=state.subtask(dep).result.output_ref,
            )
            for dep in subtask.depends_on
        ]

    async def _run_subtask(self, subtask: Subtask) -> None:
        recorder, options, defaults = self._recorder, self._request.options, self._defaults
        subtask_id = subtask.id
        try:
            queue = await self._pools.queue_for(subtask)
        except asyncio.CancelledError:
            self._cancelled(subtask_id)
            raise
        except ActivityError as error:
            if is_cancelled_exception(error):
                self._cancelled(subtask_id)
                raise asyncio.CancelledError() from error
            self._fail(subtask_id, f"{failure_message(error)} (waited {self._wait_s:g}s)")
            return
        attempts = recorder.state.subtask(subtask_id).result.attempts + 1
        recorder.update_subtask(
            subtask_id,
            status=SubtaskStatus.RUNNING,
            started_at=workflow.now(),
            pool=queue,
            attempts=attempts,
            waiting_for=None,
        )
        timeout_s = options.subtask_timeout_s or defaults.subtask_timeout_s
        try:
            result = await workflow.execute_child_workflow(
                AgentWorkflow.run,
                AgentInput(
                    task_id=recorder.state.task_id,
                    task_description=recorder.state.description,
                    subtask=subtask,
                    dependencies=self._dependencies(subtask),
                    model=recorder.state.model,
                    max_iterations=options.max_iterations,
                    llm_timeout_s=defaults.llm_timeout_s,
                    tool_timeout_s=defaults.tool_timeout_s,
                    budget=options.budget,
                    usage_before=recorder.state.usage,
                ),
                id=f"{recorder.state.task_id}.{subtask_id}",
                task_queue=queue,
                execution_timeout=timedelta(seconds=timeout_s),
                static_summary=f"{subtask_id}: {subtask.description[:180]}",
            )
        except ChildWorkflowError as error:
            if is_cancelled_exception(error) and self._cancelling:
                self._cancelled(subtask_id)
                raise asyncio.CancelledError() from error
            if is_cancelled_exception(error):  # e.g. from the Temporal UI: a failed branch
                self._cancelled(subtask_id, error="agent workflow cancelled outside the task")
                self._block_descendants(subtask_id)
                self._cancelled_outside.append(subtask_id)
                return
            message = failure_message(error)
            if isinstance(error.cause, TemporalTimeoutError):
                message = f"subtask timed out after {timeout_s:g}s"
            self._fail(subtask_id, message, usage_of_failure(error))
            return
        except asyncio.CancelledError:
            self._cancelled(subtask_id)
            raise
        output: str | None = result.answer
        output_ref = result.answer_ref  # a large answer that came back by claim check
        if output_ref is not None:
            output = None
        size = len(result.answer.encode("utf-8"))
        limit = min(defaults.claim_check_bytes, OUTPUT_INLINE_BYTES)
        if size > defaults.claim_check_bytes or (
            size > limit and workflow.patched("output-inline-32k")
        ):
            output_ref = await store_text(result.answer)
            output = None
        recorder.add_usage(result.usage)
        recorder.update_subtask(
            subtask_id,
            status=SubtaskStatus.COMPLETED,
            output=output,
            output_ref=output_ref,
            usage=result.usage,
            agent=result.agent,
            finished_at=workflow.now(),
        )
