"""`ExperimentWorkflow`: run a target under several configs and compare them.

Every run of a config is a child `TaskWorkflow` (the task engine, unchanged), with the
deterministic id `task-<experiment uuid>.<config id>[.r<row>]`. Strategies:

- `multi_branch`: every config (on every dataset row) runs, at most `max_concurrency` at once;
  each branch is scored by the `experiment_score` activity.
- `shadow`: the primary config and the shadows start together; the primary's branch is put in
  the state (`primary`) the moment it ends, so a caller has it then. Shadows are abandoned
  children: their failures are recorded on their own branch and never reach the primary.
- `round_robin`: the workflow stays open; each `serve` update takes the next config of a
  rotation kept in workflow state (so a crash neither skips nor repeats one) and answers that
  branch. The `close` signal ends it. After `continue_as_new_after` requests (or when Temporal
  suggests it) the run continues as new with its state, so the history stays bounded.
- a custom strategy (`mahsm.experiments.strategies`): an async function given this workflow
  as a `BranchRunner`.

At the end the per-config summary and winner are computed and the `experiment_mlflow_log`
activity logs everything to MLflow; if MLflow stays unreachable the experiment still
completes, with `mlflow.status = failed` (`mahsm experiment sync` logs it later).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ChildWorkflowError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from mahsm.activities.experiments import ExperimentActivities, MlflowLogRequest, ScoreRequest
    from mahsm.activities.llm.activity import LLMActivities
    from mahsm.contracts.llm import ChatMessage, LLMPurpose, LLMRequest
    from mahsm.contracts.task import TaskRequest, TaskState
    from mahsm.experiments.apply import branch_request
    from mahsm.experiments.models import (
        Branch,
        BranchError,
        BranchRole,
        BranchStatus,
        ExperimentRequest,
        ExperimentState,
        MetricKind,
        MetricSpec,
        MlflowSync,
        ServeRequest,
        ServeResult,
        Strategy,
    )
    from mahsm.experiments.scoring import (
        JUDGE_SCHEMA,
        judge_messages,
        judge_score,
        summarize,
        winner,
    )
    from mahsm.experiments.strategies import resolve_strategy
    from mahsm.pipelines.templates import as_text
    from mahsm.workflows import spans
    from mahsm.workflows.failures import failure_message, usage_of_failure
    from mahsm.workflows.payloads import store_text
    from mahsm.workflows.retry import LLM_RETRY
    from mahsm.workflows.task_workflow import TaskWorkflow

BRANCH_INLINE_BYTES = 1024
"""A branch output longer than this goes to the blob store: the state holds every branch."""
MLFLOW_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1))
SCORE_RETRY = RetryPolicy(maximum_attempts=3)


@workflow.defn(name="ExperimentWorkflow")
class ExperimentWorkflow:
    """One experiment; its workflow id is the experiment id (`experiment-<uuid>`)."""

    @workflow.init
    def __init__(self, request: ExperimentRequest) -> None:
        info = workflow.info()
        self._request = request.model_copy(update={"carried_state": None})
        self._state = request.carried_state or ExperimentState(
            experiment_id=info.workflow_id,
            name=request.name,
            strategy=request.strategy,
            created_at=info.workflow_start_time,
            updated_at=info.workflow_start_time,
            configs=request.configs,
            config_ids=[c.config_id for c in request.configs],
        )
        self._closing = False
        self._served_before = self._state.served  # by earlier runs (continue-as-new)
        self._in_flight = 0
        self._slots = asyncio.Semaphore(request.max_concurrency)

    @workflow.query(name="state")
    def state(self) -> ExperimentState:
        """Branches so far, and the summary once done."""
        return self._state

    @workflow.signal(name="close")
    def close(self) -> None:
        """Round robin: serve no more requests; summarize and log once in-flight ones end."""
        self._closing = True

    @workflow.update(name="serve")
    async def serve(self, request: ServeRequest) -> ServeResult:
        """Round robin: run this request on the next config of the rotation."""
        number = self._state.served
        self._state.served += 1  # advanced before anything awaits: replay gives the same turn
        index = number % len(self._request.configs)
        self._in_flight += 1
        try:
            branch = self._new_branch(index, row=number, role="served")
            await self._run(branch, request.inputs)
        finally:
            self._in_flight -= 1
        return ServeResult(branch=branch)

    def _run_is_full(self) -> bool:
        served_here = self._state.served - self._served_before
        return (
            served_here >= self._request.continue_as_new_after
            or workflow.info().is_continue_as_new_suggested()
        )

    @serve.validator
    def _validate_serve(self, request: ServeRequest) -> None:
        if self._request.strategy != Strategy.ROUND_ROBIN:
            raise ValueError(f"a {self._request.strategy} experiment serves no requests")
        if self._closing:
            raise ValueError("the experiment is closed")

    @workflow.run
    async def run(self, request: ExperimentRequest) -> ExperimentState:
        """Run the strategy, then summarize and log to MLflow."""
        if request.strategy == Strategy.ROUND_ROBIN:
            await workflow.wait_condition(
                lambda: (self._closing or self._run_is_full()) and self._in_flight == 0
            )
            if not self._closing:
                await workflow.wait_condition(workflow.all_handlers_finished)
                # The rotation (`served`) and every branch carry over; requests are then
                # served by the new run (same workflow id).
                workflow.continue_as_new(
                    self._request.model_copy(update={"carried_state": self._state})
                )
        elif request.strategy == Strategy.SHADOW:
            await self._shadow(request)
        elif request.strategy == Strategy.MULTI_BRANCH:
            await self._multi_branch(request)
        else:  # a custom strategy (mahsm.experiments.strategies)
            await resolve_strategy(request.strategy)(self)
        metric = request.metrics[0].key if request.metrics else None
        self._state.summary = summarize(
            request.configs, self._state.config_ids, self._state.branches, metric
        )
        self._state.winner = winner(self._state.summary)
        if request.mlflow:
            await self._log_mlflow()  # with the final results, before `completed`
        else:
            self._state.mlflow = MlflowSync(status="off")
        self._state.status = "completed"
        self._touch()
        return self._state

    async def _multi_branch(self, request: ExperimentRequest) -> None:
        rows = request.dataset or []
        branches = [
            (self._new_branch(i, row=r if rows else None), rows[r].inputs if rows else {})
            for r in range(max(1, len(rows)))
            for i in range(len(request.configs))
        ]
        await asyncio.gather(*(self._bounded(branch, inputs) for branch, inputs in branches))

    async def _bounded(self, branch: Branch, inputs: dict[str, object]) -> None:
        async with self._slots:
            await self._run(branch, inputs)

    async def _shadow(self, request: ExperimentRequest) -> None:
        primary = self._new_branch(request.primary, row=None, role="primary")
        shadows = [
            self._new_branch(i, row=None, role="shadow")
            for i in range(len(request.configs))
            if i != request.primary
        ]

        async def run_primary() -> None:
            await self._run(primary, {})
            self._state.primary = primary

        await asyncio.gather(
            run_primary(), *(self._run(branch, {}, shadow=True) for branch in shadows)
        )

    @property
    def request(self) -> ExperimentRequest:
        """The experiment (for custom strategies: `BranchRunner`)."""
        return self._request

    def new_branch(self, index: int, *, row: int | None, role: BranchRole = "branch") -> Branch:
        """Record a pending branch (for custom strategies: `BranchRunner`)."""
        return self._new_branch(index, row=row, role=role)

    async def run_branch(
        self, branch: Branch, inputs: dict[str, object], *, shadow: bool = False
    ) -> None:
        """Run a branch as a child task (for custom strategies: `BranchRunner`)."""
        await self._run(branch, inputs, shadow=shadow)

    def _new_branch(self, index: int, *, row: int | None, role: BranchRole = "branch") -> Branch:
        config = self._request.configs[index]
        branch = Branch(
            config_id=self._state.config_ids[index],
            config=config,
            index=index,
            row=row,
            role=role,
        )
        self._state.branches.append(branch)
        return branch

    def _task_id(self, branch: Branch) -> str:
        suffix = self._state.experiment_id.removeprefix("experiment-")
        return f"task-{suffix}.{branch.key}"

    async def _run(
        self, branch: Branch, inputs: dict[str, object], *, shadow: bool = False
    ) -> None:
        """Run one branch as a child task and record how it went; never raises."""
        request = self._request
        task: TaskRequest = branch_request(request, branch.config, dict(inputs))
        if shadow and not request.shadow_side_effects:
            options = task.options.model_copy(update={"side_effects": False})
            task = task.model_copy(update={"options": options})
        task_id = self._task_id(branch)
        branch.task_ids.append(task_id)
        branch.status = BranchStatus.RUNNING
        branch.started_at = workflow.now()
        self._touch()
        attributes = spans.branch_attributes(
            experiment_id=self._state.experiment_id,
            name=request.name,
            config_id=branch.config_id,
            branch=branch.key,
            label=branch.config.display(),
            user_id=request.user_id,
        )
        try:
            # One trace per branch: its child task's spans are children of this root span.
            with spans.span("experiment branch", attributes, new_trace=True):
                result = await self._child_task(branch, task, task_id, shadow=shadow)
        except ChildWorkflowError as error:
            branch.status = BranchStatus.FAILED
            cause = error.cause
            failure = getattr(cause, "failure", None)
            branch.error = BranchError(
                type=getattr(cause, "type", None) or type(cause or error).__name__,
                message=failure_message(error),
                traceback=str(getattr(failure, "stack_trace", "") or ""),
            )
            branch.usage = usage_of_failure(error)
        else:
            branch.status = BranchStatus.SUCCESS
            branch.output = result.result
            branch.output_ref = result.result_ref
            branch.value = result.outputs
            if isinstance(result.outputs, dict) and len(result.outputs) == 1:
                # A pipeline's one declared output is the answer (the result is its JSON).
                (only,) = result.outputs.values()
                if result.result_ref is None:
                    branch.output = as_text(only)
            if branch.output is not None and len(branch.output.encode()) > BRANCH_INLINE_BYTES:
                branch.output_ref = await store_text(branch.output)
                branch.output = None
            branch.usage = result.usage
        branch.finished_at = workflow.now()
        branch.duration_s = (branch.finished_at - branch.started_at).total_seconds()
        self._touch()
        if request.metrics and request.dataset and branch.row is not None:
            if branch.status == BranchStatus.SUCCESS:
                await self._score(branch)
            else:
                branch.scores = {metric.key: 0.0 for metric in request.metrics}

    async def _child_task(
        self, branch: Branch, task: TaskRequest, task_id: str, *, shadow: bool
    ) -> TaskState:
        return await workflow.execute_child_workflow(
            TaskWorkflow.run,
            task,
            id=task_id,
            task_queue=workflow.info().task_queue,
            # A shadow outlives nothing it should not: it is abandoned, not cancelled,
            # if the experiment ends, and its failure is only ever its own branch's.
            parent_close_policy=(
                ParentClosePolicy.ABANDON if shadow else ParentClosePolicy.TERMINATE
            ),
            static_summary=f"{self._request.name}: {branch.config.display()[:100]}",
        )

    async def _score(self, branch: Branch) -> None:
        request = self._request
        assert request.dataset is not None and branch.row is not None
        plain = [m for m in request.metrics if m.kind != MetricKind.LLM_JUDGE]
        for metric in request.metrics:
            if metric.kind == MetricKind.LLM_JUDGE:
                await self._judge(branch, metric)
        if not plain:
            return
        try:
            scored = await workflow.execute_activity_method(
                ExperimentActivities.score,
                ScoreRequest(
                    output=branch.output,
                    output_ref=branch.output_ref,
                    value=branch.value,
                    row=request.dataset[branch.row],
                    metrics=plain,
                ),
                activity_id=f"score/{branch.key}",
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=SCORE_RETRY,
            )
        except ActivityError as error:
            branch.error = BranchError(type="ScoringFailed", message=failure_message(error))
            branch.scores |= {metric.key: 0.0 for metric in plain}
            return
        branch.scores |= scored.scores

    async def _judge(self, branch: Branch, metric: MetricSpec) -> None:
        """An `llm_judge` metric: one LLM call (an activity) grading the output by the rubric."""
        assert self._request.dataset is not None and branch.row is not None
        output = branch.output or ("(in the next message)" if branch.output_ref else "")
        messages = [
            ChatMessage.model_validate(m)
            for m in judge_messages(metric, output, self._request.dataset[branch.row])
        ]
        if branch.output_ref is not None:
            messages.append(ChatMessage(role="user", content_ref=branch.output_ref))
        try:
            answer = await workflow.execute_activity_method(
                LLMActivities.complete,
                LLMRequest(
                    model=str(metric.judge_model),
                    purpose=LLMPurpose.STEP,
                    messages=messages,
                    response_schema=JUDGE_SCHEMA,
                    response_schema_name="grade",
                    max_output_tokens=300,
                    temperature=0.0,
                    task_id=self._state.experiment_id,
                    subtask_id=f"judge.{branch.key}",
                ),
                activity_id=f"judge/{branch.key}/{metric.key}",
                start_to_close_timeout=timedelta(minutes=5),
                heartbeat_timeout=timedelta(seconds=60),
                retry_policy=LLM_RETRY,
            )
        except ActivityError as error:
            branch.scores[metric.key] = 0.0
            branch.error = BranchError(type="JudgeFailed", message=failure_message(error))
            return
        branch.scores[metric.key] = judge_score(answer.content)
        branch.judge_usage = branch.judge_usage + answer.usage

    async def _log_mlflow(self) -> None:
        try:
            self._state.mlflow = await workflow.execute_activity_method(
                ExperimentActivities.log_mlflow,
                MlflowLogRequest(state=self._state),
                activity_id="mlflow",
                # A heartbeat per run logged: a dead worker is noticed within a minute, and a
                # retry skips the runs already finished.
                start_to_close_timeout=timedelta(hours=2),
                heartbeat_timeout=timedelta(seconds=60),
                retry_policy=MLFLOW_RETRY,
            )
        except ActivityError as error:
            self._state.mlflow = MlflowSync(status="failed", error=failure_message(error))

    def _touch(self) -> None:
        self._state.updated_at = workflow.now()
