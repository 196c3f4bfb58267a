"""Replanning on failure: the planner revises the rest of a plan, keeping finished work.

When a task's graph stops because subtasks failed for good or were blocked, and the task
asked for it (`TaskOptions.replan`), the planner gets the task, the current plan, the outputs
of finished subtasks and the failures, and answers with new subtasks for the remaining work.
Finished subtasks are kept and never run again; new subtasks may depend on them. The revision
is checked like any plan (`validate_plan` over the kept and new subtasks together, ids never
reused, at most `MAX_SUBTASKS` subtasks in the task's whole life) and sent back with the
errors a bounded number of times. Every call is an activity with a fixed id
(`replan-<n>-<attempt>`), so a worker that dies mid-revision repeats no finished call.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from pydantic import ValidationError
from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from mahsm.contracts.llm import ChatMessage, LLMPurpose, LLMRequest, LLMResponse
    from mahsm.contracts.task import (
        MAX_SUBTASKS,
        Plan,
        PlanRevision,
        SubtaskStatus,
        TaskOptions,
        TaskStatus,
    )
    from mahsm.plan_validation import validate_plan
    from mahsm.workflows import prompts, spans
    from mahsm.workflows.failures import failure_message
    from mahsm.workflows.task_recorder import TaskRecorder

REPLAN_REPAIR_ATTEMPTS = 2
"""Invalid revisions sent back to the planner, with their errors, before giving up."""

LLMCall = Callable[[LLMRequest, str, str], Awaitable[LLMResponse]]
"""The task's LLM call: (request, summary, activity id) -> response."""


class Replanner:
    """Counts a task's revisions and asks the planner for each one."""

    def __init__(
        self, *, recorder: TaskRecorder, options: TaskOptions, llm: LLMCall, fallback: list[str]
    ) -> None:
        self._recorder = recorder
        self._options = options
        self._llm = llm
        self._fallback = fallback
        self.allowed = options.replan.max_replans if options.replan is not None else 0
        self.used = 0

    async def revise(self, failure: str, stuck: list[str]) -> str | None:
        """Revise the plan after `failure` of the `stuck` subtasks.

        Returns None once the revised plan is adopted (`TaskRecorder.revise_plan`), else why
        the failure stands (no valid revision, or the planner's call failed).
        """
        self.used += 1
        number, recorder = self.used, self._recorder
        recorder.set_status(TaskStatus.PLANNING, upsert=False)
        recorder.note(f"replanning ({number} of {self.allowed}) after: {failure}")
        with spans.span(
            "replan", {"mahsm.task_id": recorder.state.task_id, "mahsm.replan.number": number}
        ):
            try:
                return await self._revised(number, failure, stuck)
            except ActivityError as error:
                if is_cancelled_exception(error):
                    raise
                return f"replanning failed: {failure_message(error)}"

    async def _revised(self, number: int, failure: str, stuck: list[str]) -> str | None:
        recorder, state = self._recorder, self._recorder.state
        assert state.plan is not None
        finished = {
            item.subtask.id: _shown_output(item.result.output, item.result.output_ref is not None)
            for item in state.subtasks
            if item.result.status == SubtaskStatus.COMPLETED
        }
        messages = [
            ChatMessage(role="system", content=prompts.replanner_system(prompts.PLANNER_SYSTEM)),
            ChatMessage(
                role="user",
                content=prompts.replan_user(
                    description=state.description,
                    plan=[(s.id, s.description, s.depends_on) for s in state.plan.subtasks],
                    finished=finished,
                    failures={sid: state.subtask(sid).result.error or "failed" for sid in stuck},
                    used_ids=[item.subtask.id for item in state.subtasks],
                ),
            ),
        ]
        errors: list[str] = []
        for attempt in range(REPLAN_REPAIR_ATTEMPTS + 1):
            answer = await self._llm(
                LLMRequest(
                    model=state.model,
                    fallback=self._fallback,
                    middleware=self._options.middleware,
                    purpose=LLMPurpose.PLAN,
                    messages=messages,
                    response_schema=prompts.plan_schema(),
                    response_schema_name="Plan",
                    task_id=state.task_id,
                ),
                f"replan {number} after {', '.join(stuck)} failed"
                + (f" (repair {attempt})" if attempt else ""),
                f"replan-{number}-{attempt}",
            )
            plan, errors = merged_revision(recorder, answer.content)
            if plan is not None:
                recorder.revise_plan(
                    plan,
                    PlanRevision(
                        number=number,
                        reason=failure,
                        failed=stuck,
                        at=workflow.now(),
                        summary=revision_summary(recorder, plan),
                        added=_added(recorder, plan),
                    ),
                )
                return None
            recorder.note("invalid revised plan: " + "; ".join(errors))
            messages += [
                ChatMessage(role="assistant", content=answer.content or ""),
                ChatMessage(role="user", content=prompts.plan_repair(errors)),
            ]
        return (
            f"replanning gave no valid plan in {REPLAN_REPAIR_ATTEMPTS + 1} attempts: "
            + "; ".join(errors)
        )


def _shown_output(output: str | None, stored: bool) -> str:
    if stored:
        return "(a large output, stored; not shown)"
    text = output or ""
    if len(text) > prompts.REPLAN_OUTPUT_CHARS:
        return text[: prompts.REPLAN_OUTPUT_CHARS] + " [...]"
    return text


def _added(recorder: TaskRecorder, plan: Plan) -> list[str]:
    known = {item.subtask.id for item in recorder.state.subtasks}
    return [s.id for s in plan.subtasks if s.id not in known]


def merged_revision(recorder: TaskRecorder, content: str | None) -> tuple[Plan | None, list[str]]:
    """The plan after a revision (finished subtasks, then the new ones), or its errors.

    Pure and deterministic: the errors go back to the planner.
    """
    revision, errors = _read_plan(content)
    if revision is None:
        return None, errors
    state = recorder.state
    assert state.plan is not None
    statuses = {item.subtask.id: item.result.status for item in state.subtasks}
    in_plan = {s.id for s in state.plan.subtasks}
    kept = [s for s in state.plan.subtasks if statuses.get(s.id) == SubtaskStatus.COMPLETED]
    kept_ids = [s.id for s in kept]
    for subtask in revision.subtasks:
        if subtask.id in kept_ids:
            errors.append(
                f"subtask '{subtask.id}' is finished and kept as it is; do not list it"
                " again (a new subtask may depend on it)"
            )
        elif subtask.id in statuses:
            errors.append(
                f"subtask id '{subtask.id}' was used by a subtask that"
                f" {statuses[subtask.id].value}; give the new subtask a new id"
            )
        for dependency in subtask.depends_on:
            if dependency in statuses and dependency not in kept_ids:
                status = statuses[dependency].value
                where = "" if dependency in in_plan else " in an earlier plan"
                errors.append(
                    f"subtask '{subtask.id}' depends on '{dependency}', which {status}{where};"
                    " depend only on finished subtasks"
                    f" ({', '.join(kept_ids) or 'none'}) or new ones"
                )
    room = MAX_SUBTASKS - len(state.subtasks)
    if len(revision.subtasks) > room:
        errors.append(
            f"the revision adds {len(revision.subtasks)} subtasks; a task has at most"
            f" {MAX_SUBTASKS} in all, so at most {max(room, 0)} more are allowed"
        )
    if errors:
        return None, errors
    merged = Plan(subtasks=[*kept, *revision.subtasks], rationale=revision.rationale)
    errors = validate_plan(merged)
    return (None, errors) if errors else (merged, [])


def revision_summary(recorder: TaskRecorder, plan: Plan) -> str:
    """What a revision changes, e.g. `kept 1 (fetch); dropped 2 (...); added 2 (...)`."""
    state = recorder.state
    assert state.plan is not None
    new_ids = {s.id for s in plan.subtasks}
    kept = [s.id for s in state.plan.subtasks if s.id in new_ids]
    dropped = [s.id for s in state.plan.subtasks if s.id not in new_ids]
    added = _added(recorder, plan)
    return "; ".join(
        f"{verb} {len(ids)}" + (f" ({', '.join(ids)})" if ids else "")
        for verb, ids in (("kept", kept), ("dropped", dropped), ("added", added))
    )


def _read_plan(content: str | None) -> tuple[Plan | None, list[str]]:
    """The `Plan` model in an answer (not yet checked as a DAG), or why it is not one."""
    if not content:
        return None, ["the answer was empty; return the new subtasks as a plan in JSON"]
    try:
        raw = json.loads(content)
    except json.JSONDecodeError as error:
        return None, [f"the answer is not valid JSON ({error.msg} at char {error.pos})"]
    try:
        return Plan.model_validate(raw), []
    except ValidationError as error:
        return None, [
            f"{'.'.join(str(p) for p in e['loc']) or 'plan'}: {e['msg']}" for e in error.errors()
        ]
