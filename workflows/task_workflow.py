"""`TaskWorkflow`: plan a task, optionally wait for approval, run its DAG, combine the results."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from mahsm.activities.engine import EngineActivities
    from mahsm.activities.llm.activity import LLMActivities
    from mahsm.activities.store import StoreActivities
    from mahsm.contracts.engine import DefaultsRequest, EngineDefaults
    from mahsm.contracts.llm import ChatMessage, LLMPurpose, LLMRequest, LLMResponse
    from mahsm.contracts.middleware import MiddlewareHook
    from mahsm.contracts.pipeline import model_chain
    from mahsm.contracts.profile import CapabilityInfo
    from mahsm.contracts.task import (
        APPROVE_UPDATE,
        STATE_QUERY,
        ApprovalDecision,
        ApprovalOutcome,
        Capability,
        Plan,
        Subtask,
        SubtaskStatus,
        TaskOptions,
        TaskRequest,
        TaskState,
        TaskStatus,
    )
    from mahsm.estimates.actuals import with_actuals
    from mahsm.pipelines import compile_pipeline, validate_inputs, validate_pipeline
    from mahsm.workflows import prompts, spans
    from mahsm.workflows.agent_artifacts import ArtifactUnusable, load_agent_artifacts
    from mahsm.workflows.dag_runner import DagRunner
    from mahsm.workflows.estimate_workflow import estimate_before_run, wants_estimate
    from mahsm.workflows.failures import failure_message
    from mahsm.workflows.graph_runner import GraphRunner
    from mahsm.workflows.middleware_hooks import run_hook, run_info
    from mahsm.workflows.payloads import OUTPUT_INLINE_BYTES, store_text
    from mahsm.workflows.pipeline_steps import StepFailed, registered_tool_capabilities
    from mahsm.workflows.replanner import Replanner
    from mahsm.workflows.retry import LLM_RETRY, STORE_RETRY
    from mahsm.workflows.task_calls import TaskCalls
    from mahsm.workflows.task_recorder import TaskRecorder

PLAN_REPAIR_ATTEMPTS = 2
# Inline agents, projection writes carried by LLM calls, no aggregation of a single subtask.
# Histories recorded before it replay on the v1 path (child workflows, store activities).
# New tasks say so in their input (`TaskRequest.engine`) and record no marker: the marker and
# the `TemporalChangeVersion` search attribute it sets cost every task two events.
ENGINE_V2 = "engine-v2"
# A flush waits this many turns of the workflow's event loop, so that calls started in the
# same activation carry the change instead of a write of its own.
_FLUSH_YIELDS = 3
FALLBACK_CAPABILITIES = [Capability.DATA_ANALYSIS]


@workflow.defn(name="TaskWorkflow")
class TaskWorkflow:
    """One user task from plan to result. Its workflow id is the task id (`task-<uuid>`)."""

    @workflow.init
    def __init__(self, request: TaskRequest) -> None:
        info = workflow.info()
        self._recorder = TaskRecorder(
            TaskState(
                task_id=info.workflow_id,
                description=request.description,
                user_id=request.user_id,
                created_at=info.workflow_start_time,
                updated_at=info.workflow_start_time,
                options=request.options,
            )
        )
        self._decision: ApprovalDecision | None = None
        self._closing = False
        self._timed_out = False
        self._dag: DagRunner | None = None
        self._llm_timeout_s = 300.0
        self._calls: TaskCalls | None = None
        self._fallback: list[str] = []
        self._capabilities: list[CapabilityInfo] = []  # live pools' (engine_defaults)

    @workflow.query(name=STATE_QUERY)
    def state(self) -> TaskState:
        """The whole task state, at any moment."""
        return self._recorder.state

    @workflow.update(name=APPROVE_UPDATE)
    async def approve(self, decision: ApprovalDecision) -> ApprovalOutcome:
        """Approve or reject a task awaiting approval; returns the status it moved to."""
        self._decision = decision
        await workflow.wait_condition(
            lambda: self._recorder.state.status != TaskStatus.AWAITING_APPROVAL
        )
        return ApprovalOutcome(status=self._recorder.state.status)

    @approve.validator
    def _validate_approve(self, decision: ApprovalDecision) -> None:
        status = self._recorder.state.status
        if status != TaskStatus.AWAITING_APPROVAL or self._decision is not None:
            raise ValueError(f"task is {status.value}, not awaiting approval")

    @workflow.run
    async def run(self, request: TaskRequest) -> TaskState:
        """Run the task; it fails (as a workflow) unless the task completes or is rejected."""
        attributes = spans.task_attributes(
            task_id=workflow.info().workflow_id,
            user_id=request.user_id,
            description=request.description,
            pipeline=request.pipeline.name if request.pipeline is not None else None,
        )
        with spans.span("task", attributes) as span:
            try:
                return await self._run(request)
            finally:
                spans.record_task_end(span, self._recorder.state)

    async def _run(self, request: TaskRequest) -> TaskState:
        recorder = self._recorder
        # A request that names its engine ran on it from the start; one that does not was
        # recorded before that field: the patch marker tells engine v2 from v1.
        v2 = "engine" in request.model_fields_set or workflow.patched(ENGINE_V2)
        flusher = asyncio.create_task(self._flush_v2() if v2 else self._flush_loop())
        recorder.set_status(TaskStatus.PENDING, upsert=not v2)
        try:
            defaults = await workflow.execute_local_activity_method(
                EngineActivities.engine_defaults,
                DefaultsRequest(),
                start_to_close_timeout=timedelta(seconds=10),
            )
        except asyncio.CancelledError:
            recorder.set_status(TaskStatus.CANCELLED, error="cancelled by request")
            self._closing = True
            await flusher
            raise
        self._capabilities = defaults.capabilities
        models = model_chain(request.options.model) or [defaults.model]
        recorder.state.model = models[0]
        self._fallback = models[1:]
        if v2:
            self._calls = TaskCalls(
                recorder=recorder, defaults=defaults, budget=request.options.budget
            )
        task_timeout = request.options.task_timeout_s or defaults.task_timeout_s
        self._llm_timeout_s = defaults.llm_timeout_s
        body = asyncio.create_task(self._execute(request, defaults))
        try:
            if v2:
                await self._within(body, task_timeout)
            else:
                await workflow.wait_condition(body.done, timeout=timedelta(seconds=task_timeout))
        except TimeoutError:
            self._timed_out = True
            body.cancel()
        except asyncio.CancelledError:
            body.cancel()
            await self._settle(body, flusher)
            await self._run_end_hook(request, defaults)
            raise
        await self._settle(body, flusher)
        await self._run_end_hook(request, defaults)
        state = recorder.state
        if state.status in (TaskStatus.COMPLETED, TaskStatus.CANCELLED):
            return state
        raise ApplicationError(
            state.error or f"task ended {state.status.value}",
            type="TaskTimedOut" if state.status == TaskStatus.TIMED_OUT else "TaskFailed",
            non_retryable=True,
        )

    @staticmethod
    async def _within(body: asyncio.Task[None], timeout_s: float) -> None:
        """Wait for `body`; raise `TimeoutError` when `timeout_s` passes first.

        The timer is left running when the body ends (the workflow completes with it): a
        cancelled timer would cost the task's history one more event.
        """
        timer = asyncio.create_task(workflow.sleep(timeout_s))
        await workflow.wait_condition(lambda: body.done() or timer.done())
        if not body.done():
            raise TimeoutError()

    async def _settle(self, body: asyncio.Task[None], flusher: asyncio.Task[None]) -> None:
        """Let the body finish its own clean-up, then write the final state."""
        try:
            await body
        except asyncio.CancelledError:
            pass
        estimate = with_actuals(self._recorder.state, workflow.now())
        if estimate is not None:  # the estimate next to what the task spent
            self._recorder.set_estimate(estimate)
        self._closing = True
        await flusher

    async def _run_end_hook(self, request: TaskRequest, defaults: EngineDefaults) -> None:
        """`on_run_end` of the task's middleware, with the final status; failures are logged.

        The task's outcome is settled and written by then: a hook cannot change it.
        """
        if self._calls is None:  # engine v1 histories ran no hooks
            return
        try:
            await run_hook(
                defaults,
                request.options.middleware,
                MiddlewareHook.ON_RUN_END,
                run_info(self._recorder.state),
            )
        except ActivityError as error:
            workflow.logger.warning("middleware on_run_end failed: %s", failure_message(error))

    async def _execute(self, request: TaskRequest, defaults: EngineDefaults) -> None:
        recorder = self._recorder
        try:
            await self._phases(request, defaults)
        except asyncio.CancelledError:
            await self._record_cancellation(request, defaults)
            raise
        except (ActivityError, ApplicationError) as error:
            # A cancelled activity (planning, aggregation) surfaces as an ActivityError.
            if not is_cancelled_exception(error):
                recorder.set_status(TaskStatus.FAILED, error=failure_message(error))
                return
            await self._record_cancellation(request, defaults)
            raise asyncio.CancelledError() from error

    async def _phases(self, request: TaskRequest, defaults: EngineDefaults) -> None:
        recorder = self._recorder
        if request.pipeline is not None:
            plan = self._pipeline_plan(request)
            if plan is None:
                return
        else:
            plan = request.plan or await self._plan(request)
        recorder.set_plan(plan)
        if wants_estimate(request):
            estimate = await estimate_before_run(
                request, plan, model=recorder.state.model, spent_before=recorder.state.usage
            )
            if estimate is not None:
                recorder.set_estimate(estimate)
        if request.options.require_approval and not await self._await_approval(request.options):
            return
        instructions: dict[str, str] = {}
        if self._calls is not None:
            try:  # the artifacts' tools are checked now, not when an agent starts
                instructions = await load_agent_artifacts(request.options, plan)
            except ArtifactUnusable as error:
                recorder.set_status(TaskStatus.FAILED, error=str(error))
                return
            # An abort here fails the task before any step runs.
            await run_hook(
                defaults,
                request.options.middleware,
                MiddlewareHook.ON_RUN_START,
                run_info(recorder.state),
            )
        recorder.set_status(TaskStatus.RUNNING)
        if self._calls is None:
            self._dag = DagRunner(recorder=recorder, request=request, defaults=defaults)
        else:
            self._dag = GraphRunner(
                recorder=recorder,
                request=request,
                defaults=defaults,
                calls=self._calls,
                instructions=instructions,
            )
        failure = await self._dag.run()
        if failure and request.pipeline is None and request.options.replan is not None:
            failure = await self._replanned(request, failure)
            if recorder.state.status.is_terminal:  # a revision was rejected or not approved
                return
        if isinstance(self._dag, GraphRunner):
            await self._dag.hooks_done()
        if failure:
            recorder.set_status(TaskStatus.FAILED, error=failure)
            return
        if isinstance(self._dag, GraphRunner) and request.pipeline is not None:
            await self._pipeline_outputs(self._dag)
            return
        current = self._dag.current()  # a revision leaves dropped subtasks outside the plan
        if self._calls is not None and len(current) == 1:
            only = current[0].result  # its answer is the task's result
            recorder.state.result, recorder.state.result_ref = only.output, only.output_ref
        else:
            await self._aggregate(plan)
        recorder.set_status(TaskStatus.COMPLETED)

    async def _replanned(self, request: TaskRequest, failure: str | None) -> str | None:
        """Revise the plan and run on while subtasks fail and revisions remain.

        Returns why the task failed, or None once the revised plan ran to the end.
        """
        dag, recorder = self._dag, self._recorder
        assert dag is not None
        replanner = Replanner(
            recorder=recorder, options=request.options, llm=self._llm, fallback=self._fallback
        )
        while failure:
            stuck = dag.stuck()
            spent = self._calls.budget.spent() if self._calls is not None else None
            if not stuck or spent or replanner.allowed == 0:
                return failure
            if replanner.used >= replanner.allowed:
                return f"{failure}; replans used up ({replanner.used} of {replanner.allowed})"
            not_revised = await replanner.revise(failure, stuck)
            if not_revised:
                return f"{failure}; {not_revised}"
            approval = request.options.require_approval
            if approval:
                self._decision = None  # the revised plan needs an approval of its own
                if not await self._await_approval(request.options):
                    return None
            recorder.set_status(TaskStatus.RUNNING, upsert=approval)
            dag.adopt_plan()
            failure = await dag.run()
        return None

    def _pipeline_plan(self, request: TaskRequest) -> Plan | None:
        """The plan of a pipeline run, or None (the task failed) when it cannot run."""
        pipeline, recorder = request.pipeline, self._recorder
        assert pipeline is not None
        recorder.state.pipeline = pipeline.name + (
            f"@{pipeline.version}" if pipeline.version else ""
        )
        problems = validate_pipeline(pipeline) + validate_inputs(pipeline, request.inputs)
        if problems:
            recorder.set_status(
                TaskStatus.FAILED,
                error="invalid pipeline: " + "; ".join(str(p) for p in problems),
            )
            return None
        return compile_pipeline(pipeline, registered_tool_capabilities)

    async def _pipeline_outputs(self, dag: GraphRunner) -> None:
        """Fill the pipeline's outputs; they are the task's result (as JSON text)."""
        recorder = self._recorder
        try:
            outputs = dag.pipeline_outputs()
        except StepFailed as error:
            recorder.set_status(TaskStatus.FAILED, error=str(error))
            return
        text = json.dumps(outputs, ensure_ascii=False)
        if len(text.encode("utf-8")) > OUTPUT_INLINE_BYTES:
            recorder.state.result_ref = await store_text(text)
            recorder.state.outputs = None
        else:
            recorder.state.result, recorder.state.outputs = text, outputs
        recorder.set_status(TaskStatus.COMPLETED)

    async def _record_cancellation(self, request: TaskRequest, defaults: EngineDefaults) -> None:
        """Stop running subtasks and record the task `cancelled` (or `timed_out`)."""
        recorder = self._recorder
        if self._dag is not None:
            await self._dag.cancel_all()
        for item in recorder.state.subtasks:
            if not item.result.status.is_terminal:
                recorder.update_subtask(
                    item.subtask.id, status=SubtaskStatus.CANCELLED, finished_at=workflow.now()
                )
        if self._timed_out:
            timeout = request.options.task_timeout_s or defaults.task_timeout_s
            recorder.set_status(TaskStatus.TIMED_OUT, error=f"task timed out after {timeout:g}s")
        else:
            recorder.set_status(TaskStatus.CANCELLED, error="cancelled by request")

    async def _llm(self, request: LLMRequest, summary: str, activity_id: str) -> LLMResponse:
        if self._calls is not None:
            response = await self._calls.llm(request, activity_id=activity_id, summary=summary)
            if response.detections:  # steps note theirs; planning and aggregation here
                found = ", ".join(f"{k} x{n}" for k, n in sorted(response.detections.items()))
                self._recorder.note(f"middleware detections ({activity_id}): {found}")
            return response
        response = await workflow.execute_activity_method(
            LLMActivities.complete,
            request,
            start_to_close_timeout=timedelta(seconds=self._llm_timeout_s),
            heartbeat_timeout=timedelta(seconds=min(60.0, self._llm_timeout_s)),
            retry_policy=LLM_RETRY,
            summary=summary,
        )
        self._recorder.add_usage(response.usage)
        return response

    async def _plan(self, request: TaskRequest) -> Plan:
        """Ask the planner; repair invalid plans a bounded number of times; else fall back."""
        with spans.span("plan", {"mahsm.task_id": self._recorder.state.task_id}) as span:
            plan = await self._planned(request)
            span.set_attribute("mahsm.plan.subtasks", len(plan.subtasks))
            return plan

    async def _planned(self, request: TaskRequest) -> Plan:
        recorder = self._recorder
        # Engine v2 leaves the search attribute at `pending` while planning (one event less);
        # the state, the event log and the UI details say `planning`.
        recorder.set_status(TaskStatus.PLANNING, upsert=self._calls is None)
        told = [c.name for c in self._capabilities]
        known = prompts.accepted_capabilities(self._capabilities)
        messages = [
            ChatMessage(role="system", content=prompts.planner_system(self._capabilities)),
            ChatMessage(role="user", content=prompts.planner_user(request.description)),
        ]
        for attempt in range(PLAN_REPAIR_ATTEMPTS + 1):
            answer = await self._llm(
                LLMRequest(
                    model=recorder.state.model,
                    fallback=self._fallback,
                    middleware=request.options.middleware,
                    purpose=LLMPurpose.PLAN,
                    messages=messages,
                    response_schema=prompts.plan_schema(told),
                    response_schema_name="Plan",
                    task_id=recorder.state.task_id,
                ),
                summary="plan" if attempt == 0 else f"repair plan ({attempt})",
                activity_id=f"plan-{attempt}",
            )
            content = answer.content
            plan, errors = prompts.parse_plan(content, known, suggest=told)
            if plan is not None:
                return plan
            recorder.note("invalid plan: " + "; ".join(errors))
            messages += [
                ChatMessage(role="assistant", content=content or ""),
                ChatMessage(role="user", content=prompts.plan_repair(errors)),
            ]
        recorder.note("planner gave no valid plan; running the task as a single subtask")
        return Plan(
            subtasks=[
                Subtask(
                    id="task",
                    description=request.description,
                    required_capabilities=FALLBACK_CAPABILITIES,
                )
            ],
            rationale="fallback: the planner gave no valid plan",
        )

    async def _await_approval(self, options: TaskOptions) -> bool:
        recorder = self._recorder
        recorder.set_status(TaskStatus.AWAITING_APPROVAL)
        try:
            await workflow.wait_condition(
                lambda: self._decision is not None,
                timeout=timedelta(seconds=options.approval_timeout_s),
            )
        except TimeoutError:
            recorder.set_status(
                TaskStatus.TIMED_OUT,
                error=f"no approval within {options.approval_timeout_s:g}s",
            )
            return False
        assert self._decision is not None
        recorder.state.approval_comment = self._decision.comment or None
        if not self._decision.approved:
            recorder.set_status(
                TaskStatus.CANCELLED,
                error="rejected"
                + (f": {self._decision.comment}" if self._decision.comment else ""),
            )
            return False
        recorder.note(
            "approved" + (f": {self._decision.comment}" if self._decision.comment else "")
        )
        return True

    async def _aggregate(self, plan: Plan) -> None:
        """Combine the subtask outputs into the task result with one LLM call."""
        with spans.span("aggregate", {"mahsm.task_id": self._recorder.state.task_id}):
            await self._aggregated(plan)

    async def _aggregated(self, plan: Plan) -> None:
        recorder = self._recorder
        outputs: dict[str, str] = {}
        extra: list[ChatMessage] = []
        assert self._dag is not None
        for item in self._dag.current():
            result = item.result
            if result.output_ref is not None:
                outputs[item.subtask.id] = "(attached below)"
                extra.append(ChatMessage(role="user", content_ref=result.output_ref))
            else:
                outputs[item.subtask.id] = result.output or ""
        answer = await self._llm(
            LLMRequest(
                model=recorder.state.model,
                fallback=self._fallback,
                middleware=recorder.state.options.middleware,
                purpose=LLMPurpose.AGGREGATE,
                messages=[
                    ChatMessage(role="system", content=prompts.AGGREGATOR_SYSTEM),
                    ChatMessage(
                        role="user",
                        content=prompts.aggregator_user(recorder.state.description, outputs),
                    ),
                    *extra,
                ],
                task_id=recorder.state.task_id,
            ),
            summary="aggregate results",
            activity_id="aggregate",
        )
        if answer.content_ref is not None:  # a large result travels by claim check
            recorder.state.result, recorder.state.result_ref = None, answer.content_ref
        else:
            recorder.state.result = answer.content or ""

    async def _flush_loop(self) -> None:
        """Write state changes to Postgres, one write in flight at a time, until closing."""
        while True:
            await workflow.wait_condition(lambda: self._recorder.dirty or self._closing)
            write = self._recorder.take_write()
            if write is None:
                return
            await workflow.execute_activity_method(
                StoreActivities.store_task,
                write,
                # Short: the write is idempotent and retried without limit, and a write lost
                # with a crashed worker holds up the task's final state until it times out.
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=STORE_RETRY,
                summary="store state",
            )

    async def _flush_v2(self) -> None:
        """Write changes no call carried: while nothing is in flight, and once at the end.

        LLM calls carry the pending change (`TaskCalls`); this writes, with a local activity,
        what waits for no call (approval, a pool wait, the end of the task).
        """
        recorder = self._recorder
        while True:
            await workflow.wait_condition(lambda: self._closing or self._idle_and_dirty())
            if not self._closing:
                for _ in range(_FLUSH_YIELDS):
                    await asyncio.sleep(0)
                if not self._idle_and_dirty():
                    continue
            write = recorder.take_write()
            if write is not None:
                await workflow.execute_local_activity_method(
                    StoreActivities.store_task,
                    write,
                    start_to_close_timeout=timedelta(seconds=10),
                    retry_policy=STORE_RETRY,
                    summary="store state",
                )
            if self._closing and not recorder.dirty:
                return

    def _idle_and_dirty(self) -> bool:
        return self._recorder.dirty and self._calls is not None and self._calls.in_flight == 0
