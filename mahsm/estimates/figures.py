"""The figures of one step: from history when there is some, else from the defaults."""

from __future__ import annotations

import math

from mahsm.contracts.estimate import Basis, Figures, Range, StepEstimate
from mahsm.contracts.task import Subtask
from mahsm.estimates import defaults
from mahsm.estimates.history import ANY, History, Observed, capability_key

Price = tuple[float, float]
"""USD per million input and output tokens (as `activities/llm/pricing.py` answers them)."""

TASK_STEP_ID = "_task"
"""The id of the step standing for the task's own calls (planning, aggregation)."""


def widened(value: Range, samples: int) -> Range:
    """`value` with bounds at least +-50%/sqrt(samples) around expected.

    Percentiles of a few samples are too narrow: one sample gives low = expected = high.
    """
    spread = 0.5 / math.sqrt(max(samples, 1))
    return Range(
        low=min(value.low, value.expected * (1 - spread)),
        expected=value.expected,
        high=max(value.high, value.expected * (1 + spread)),
    )


def priced(input_tokens: Range, output_tokens: Range, price: Price) -> Range:
    """USD of the tokens at `price` (USD per million input, output tokens), bound by bound."""
    price_in, price_out = price
    return Range(
        low=(input_tokens.low * price_in + output_tokens.low * price_out) / 1e6,
        expected=(input_tokens.expected * price_in + output_tokens.expected * price_out) / 1e6,
        high=(input_tokens.high * price_in + output_tokens.high * price_out) / 1e6,
    )


def _times(a: Range, b: Range) -> Range:
    return Range(low=a.low * b.low, expected=a.expected * b.expected, high=a.high * b.high)


def _figures(
    *, calls: Range, input_tokens: Range, output_tokens: Range, seconds: Range, price: Price
) -> Figures:
    return Figures(
        llm_calls=calls,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=priced(input_tokens, output_tokens, price),
        duration_s=seconds,
    )


def _learned(
    history: History, capabilities: list[str], model: str
) -> tuple[Observed, Basis] | None:
    key = capability_key(capabilities)
    for lookup, basis in (
        ((key, model), Basis.HISTORY),
        ((key, ANY), Basis.HISTORY_CAPABILITIES),
        ((ANY, model), Basis.HISTORY_MODEL),
    ):
        found = history.subtasks.get(lookup)
        if found is not None:
            return found, basis
    return None


def default_agent_calls(max_iterations: int) -> Range:
    """An agent's calls without history: 1, 2 (or fewer iterations allowed), max_iterations."""
    expected = min(defaults.AGENT_CALLS_EXPECTED, float(max_iterations))
    return Range(low=1.0, expected=expected, high=float(max_iterations))


def agent_step(
    subtask: Subtask, *, model: str, history: History, price: Price, max_iterations: int
) -> StepEstimate:
    """The estimate of one agent subtask."""
    capabilities = [str(c) for c in subtask.required_capabilities]
    learned = _learned(history, capabilities, model)
    if learned is not None:
        observed, basis = learned
        n = observed.samples
        calls = observed.llm_calls or default_agent_calls(max_iterations)
        calls = Range(
            low=max(1.0, calls.low),
            expected=max(1.0, calls.expected),
            high=min(float(max_iterations), max(calls.high, calls.expected)),
        )
        figures = _figures(
            calls=calls,
            input_tokens=widened(observed.input_tokens, n),
            output_tokens=widened(observed.output_tokens, n),
            seconds=widened(observed.seconds, n),
            price=price,
        )
        return StepEstimate(
            id=subtask.id,
            capabilities=capabilities,
            model=model,
            figures=figures,
            basis=basis,
            samples=n,
        )
    calls = default_agent_calls(max_iterations)
    call = defaults.AGENT_CALL
    seconds = _times(calls, call.seconds)
    if subtask.estimated_duration:  # the planner's own guess beats a constant
        low, high = defaults.PLANNER_DURATION_SPREAD
        seconds = Range(
            low=subtask.estimated_duration * low,
            expected=subtask.estimated_duration,
            high=subtask.estimated_duration * high,
        )
    figures = _figures(
        calls=calls,
        input_tokens=_times(calls, call.input_tokens),
        output_tokens=_times(calls, call.output_tokens),
        seconds=seconds,
        price=price,
    )
    return StepEstimate(
        id=subtask.id, capabilities=capabilities, model=model, figures=figures, basis=Basis.DEFAULT
    )


def task_step(
    *,
    model: str,
    planned: bool,
    aggregated: bool,
    history: History,
    price: Price,
    outputs: Range | None = None,
) -> StepEstimate | None:
    """The estimate of the task's own calls: planning (when it plans) and aggregation.

    `outputs` are the subtasks' output tokens, which the aggregation reads: learned figures
    leave them out (history.py) and get this plan's added.
    """
    if not planned and not aggregated:
        return None
    read = outputs if aggregated and outputs is not None else Range()
    exact = float(planned) + float(aggregated)
    # Planning may be repaired twice (three calls).
    calls = Range(low=exact, expected=exact, high=3.0 * planned + float(aggregated))
    for lookup, basis in (
        ((model, planned, aggregated), Basis.HISTORY),
        ((ANY, planned, aggregated), Basis.HISTORY_CAPABILITIES),
    ):
        observed = history.tasks.get(lookup)
        if observed is not None:
            n = observed.samples
            figures = _figures(
                calls=calls,
                input_tokens=widened(observed.input_tokens, n) + read,
                output_tokens=widened(observed.output_tokens, n),
                seconds=widened(observed.seconds, n),
                price=price,
            )
            return StepEstimate(
                id=TASK_STEP_ID, model=model, figures=figures, basis=basis, samples=n
            )
    parts = ([defaults.PLANNING_CALL] if planned else []) + (
        [defaults.AGGREGATION_CALL] if aggregated else []
    )
    input_tokens, output_tokens, seconds = Range(), Range(), Range()
    for part in parts:
        input_tokens += part.input_tokens
        output_tokens += part.output_tokens
        seconds += part.seconds
    figures = _figures(
        calls=calls,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        seconds=seconds,
        price=price,
    )
    return StepEstimate(id=TASK_STEP_ID, model=model, figures=figures, basis=Basis.DEFAULT)
