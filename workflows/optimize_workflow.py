"""`OptimizeWorkflow`: one optimization run (`mahsm optimize`), its progress queryable.

The optimizer runs in the `optimize_run` activity (see `mahsm.activities.optimize` for why
and how its LM calls survive a crash); the workflow retries it after a crash, takes progress
signals and answers the `state` query.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from mahsm.activities.optimize import OptimizeActivities
    from mahsm.optimize.models import OptimizeProgress, OptimizeRequest, OptimizeState
    from mahsm.workflows import spans
    from mahsm.workflows.failures import failure_message


@workflow.defn(name="OptimizeWorkflow")
class OptimizeWorkflow:
    """Runs one optimization and saves its result as a prompt artifact version."""

    def __init__(self) -> None:
        self._state = OptimizeState()

    @workflow.run
    async def run(self, request: OptimizeRequest) -> OptimizeState:
        """Optimize; the state ends `completed` with the saved artifact, or `failed`."""
        run_id = workflow.info().workflow_id
        attributes = {
            "mahsm.optimization_id": run_id,
            "session.id": run_id,
            "langfuse.trace.name": f"optimize {request.program} -> {request.save}",
            "mahsm.optimizer": request.optimizer,
        }
        with spans.span("optimization", attributes) as span:
            state = await self._run(request)
            span.set_attribute("mahsm.optimization.status", state.status)
            return state

    async def _run(self, request: OptimizeRequest) -> OptimizeState:
        try:
            self._state.result = await workflow.execute_activity_method(
                OptimizeActivities.run,
                request,
                activity_id="optimize",
                start_to_close_timeout=timedelta(hours=6),
                heartbeat_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(maximum_attempts=5),
                summary=f"optimize {request.program} -> {request.save}",
            )
        except ActivityError as error:
            self._state.status = "failed"
            self._state.error = failure_message(error)
            return self._state
        self._state.status = "completed"
        self._state.progress.stage = "done"
        if self._state.result.score is not None:
            best = self._state.progress.best_score
            self._state.progress.best_score = max(best or 0.0, self._state.result.score)
        return self._state

    @workflow.signal(name="progress")
    def progress(self, progress: OptimizeProgress) -> None:
        """The activity's progress; a later retry's counts replace an earlier attempt's."""
        self._state.progress = progress

    @workflow.query(name="state")
    def state(self) -> OptimizeState:
        """Progress, and the result once saved."""
        return self._state
