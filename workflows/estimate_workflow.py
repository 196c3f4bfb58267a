"""`PlanEstimateWorkflow`: a plan's estimate before anything runs (`POST /tasks/estimate`).

The planner is asked once (its call is an activity like every LLM call, so the API runs
none); the plan, given or planned, is estimated by `estimate_plan`. Nothing else runs.
`estimate_before_run` is the same estimate for `TaskWorkflow`, before the approval wait.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from mahsm.activities.engine import EngineActivities
    from mahsm.activities.estimate import EstimateActivities
    from mahsm.activities.llm.activity import LLMActivities
    from mahsm.contracts.engine import DefaultsRequest
    from mahsm.contracts.estimate import (
        EstimateInput,
        EstimateReport,
        EstimateWorkflowInput,
        PlanEstimate,
    )
    from mahsm.contracts.llm import ChatMessage, LLMPurpose, LLMRequest
    from mahsm.contracts.pipeline import model_chain
    from mahsm.contracts.task import Plan, Subtask, TaskRequest, Usage
    from mahsm.workflows import prompts
    from mahsm.workflows.failures import failure_message
    from mahsm.workflows.retry import LLM_RETRY, llm_heartbeat_timeout

ESTIMATE_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(milliseconds=200))
# The single-subtask plan a task falls back to when the planner gives no valid plan.
_FALLBACK_CAPABILITY = "data_analysis"


def wants_estimate(request: TaskRequest) -> bool:
    """Whether a task estimates its plan before running it.

    Requests made before `TaskOptions.estimate` existed carry no such key: their histories
    replay without the estimate (no patch marker needed, as for `TaskRequest.engine`).
    """
    options = request.options
    if "estimate" not in options.model_fields_set or request.pipeline is not None:
        return False
    return options.estimate or options.require_approval


async def estimate_before_run(
    request: TaskRequest, plan: Plan, *, model: str, spent_before: Usage
) -> PlanEstimate | None:
    """The plan's estimate by a local activity; None (with a log line) when it failed.

    An estimate informs; it never stops a task.
    """
    try:
        return await workflow.execute_local_activity_method(
            EstimateActivities.estimate_plan,
            _input(request, plan, model=model, plans=False, spent_before=spent_before),
            start_to_close_timeout=timedelta(seconds=15),
            retry_policy=ESTIMATE_RETRY,
            summary="estimate plan",
        )
    except ActivityError as error:
        workflow.logger.warning("plan estimate failed: %s", failure_message(error))
        return None


def _input(
    request: TaskRequest, plan: Plan, *, model: str, plans: bool, spent_before: Usage
) -> EstimateInput:
    return EstimateInput(
        plan=plan,
        model=model,
        max_iterations=request.options.max_iterations,
        max_parallel=request.options.max_parallel,
        plans=plans,
        spent_before=spent_before,
    )


@workflow.defn(name="PlanEstimateWorkflow")
class PlanEstimateWorkflow:
    """Plan (one planner call, when the request has no plan) and estimate; run nothing."""

    @workflow.run
    async def run(self, start: EstimateWorkflowInput) -> EstimateReport:
        """The plan, what planning it cost, and its estimate."""
        request = start.request
        defaults = await workflow.execute_local_activity_method(
            EngineActivities.engine_defaults,
            DefaultsRequest(),
            start_to_close_timeout=timedelta(seconds=10),
        )
        model = (model_chain(request.options.model) or [defaults.model])[0]
        planning: Usage | None = None
        notes: list[str] = []
        plan = request.plan
        if plan is None:
            answer = await workflow.execute_activity_method(
                LLMActivities.complete,
                LLMRequest(
                    model=model,
                    middleware=request.options.middleware,
                    purpose=LLMPurpose.PLAN,
                    messages=[
                        ChatMessage(role="system", content=prompts.PLANNER_SYSTEM),
                        ChatMessage(role="user", content=prompts.planner_user(request.description)),
                    ],
                    response_schema=prompts.plan_schema(),
                    response_schema_name="Plan",
                ),
                start_to_close_timeout=timedelta(seconds=defaults.llm_timeout_s),
                heartbeat_timeout=llm_heartbeat_timeout(defaults.llm_timeout_s),
                retry_policy=LLM_RETRY,
                summary="plan (for an estimate)",
            )
            planning = answer.usage
            plan, errors = prompts.parse_plan(answer.content)
            if plan is None:  # the task would repair it; the estimate takes the fallback
                notes.append(
                    "the planner's plan was invalid (" + "; ".join(errors) + "): estimated the"
                    " single-subtask plan a task falls back to"
                )
                only = {
                    "id": "task",
                    "description": request.description,
                    "required_capabilities": [_FALLBACK_CAPABILITY],
                }
                plan = Plan(subtasks=[Subtask.model_validate(only)])
        estimate = await workflow.execute_local_activity_method(
            EstimateActivities.estimate_plan,
            _input(request, plan, model=model, plans=request.plan is None, spent_before=Usage()),
            start_to_close_timeout=timedelta(seconds=15),
            retry_policy=ESTIMATE_RETRY,
        )
        estimate.notes = notes + estimate.notes
        return EstimateReport(
            plan=plan,
            planned=request.plan is None,
            planning_usage=planning,
            estimate=estimate,
            computed_at=workflow.now(),
        )
