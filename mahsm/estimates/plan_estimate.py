"""A plan's estimate: every step's figures, summed, with the duration along the critical path."""

from __future__ import annotations

from mahsm.contracts.estimate import Basis, Figures, PlanEstimate, Range
from mahsm.contracts.pipeline import StepKind
from mahsm.contracts.task import Plan, Usage
from mahsm.estimates.figures import Price, agent_step, task_step
from mahsm.estimates.history import History
from mahsm.estimates.schedule import schedule


def estimate_plan(
    plan: Plan,
    *,
    model: str,
    history: History,
    price: Price,
    max_iterations: int = 8,
    max_parallel: int | None = None,
    plans: bool = False,
    spent_before: Usage | None = None,
) -> PlanEstimate:
    """Estimate `plan` on `model`.

    Args:
        plan: A valid plan of agent subtasks.
        model: The model its calls use (the first of a fallback chain).
        history: What finished work cost (`load_history`).
        price: The model's price (USD per million input, output tokens).
        max_iterations: The agents' limit: the high bound of their calls.
        max_parallel: The task's limit on subtasks at once (None: the engine's).
        plans: The task will call the planner first (a request without a plan).
        spent_before: What the task spent before the estimate (its planning), reported apart.

    Returns:
        Calls, tokens and cost summed over the steps (each bound summed: the range of the total
        is wider than a percentile of it would be); the duration is the task's own calls plus
        the schedule of the subtasks, computed for low, expected and high durations alike.
    """
    steps = [
        agent_step(s, model=model, history=history, price=price, max_iterations=max_iterations)
        for s in plan.subtasks
    ]
    notes = [
        f"subtask '{s.id}' is a {s.kind.value} step: estimated like an agent"
        for s in plan.subtasks
        if s.kind != StepKind.AGENT
    ]
    outputs = Range()
    for step in steps:
        outputs += step.figures.output_tokens
    own = task_step(
        model=model,
        planned=plans,
        aggregated=len(plan.subtasks) > 1,
        history=history,
        price=price,
        outputs=outputs,
    )
    total = Figures()
    for step in [*steps, *([own] if own else [])]:
        total += step.figures
    durations = {step.id: step.figures.duration_s for step in steps}
    expected = schedule(plan, _bound(durations, "expected"), max_parallel=max_parallel)
    own_s = own.figures.duration_s if own is not None else Range()
    total.duration_s = Range(
        low=own_s.low
        + schedule(plan, _bound(durations, "low"), max_parallel=max_parallel).makespan_s,
        expected=own_s.expected + expected.makespan_s,
        high=own_s.high
        + schedule(plan, _bound(durations, "high"), max_parallel=max_parallel).makespan_s,
    )
    if all(step.basis == Basis.DEFAULT for step in steps):
        notes.append("no history for these capabilities and model: documented defaults used")
    return PlanEstimate(
        model=model,
        subtasks=steps,
        task_calls=own,
        total=total,
        critical_path=expected.critical_path,
        notes=notes,
        spent_before=spent_before or Usage(),
    )


def _bound(durations: dict[str, Range], which: str) -> dict[str, float]:
    return {sid: float(getattr(r, which)) for sid, r in durations.items()}
