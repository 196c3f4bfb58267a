"""The figures an estimate uses where there is no history (documented in docs/estimates.md)."""

from __future__ import annotations

from dataclasses import dataclass

from mahsm.contracts.estimate import Range


@dataclass(frozen=True)
class CallDefaults:
    """Per LLM call: input and output tokens, seconds."""

    input_tokens: Range
    output_tokens: Range
    seconds: Range


AGENT_CALL = CallDefaults(
    input_tokens=Range(low=500, expected=1500, high=4000),
    output_tokens=Range(low=100, expected=300, high=1000),
    seconds=Range(low=1, expected=4, high=15),
)
"""One call of an agent's loop."""

AGENT_CALLS_EXPECTED = 2.0
"""An agent's calls: one tool round and the answer; low 1, high `max_iterations`."""

PLANNING_CALL = CallDefaults(
    input_tokens=Range(low=400, expected=800, high=2000),
    output_tokens=Range(low=150, expected=400, high=1500),
    seconds=Range(low=1, expected=5, high=20),
)
"""The planner's call; high: two repairs (three calls)."""

AGGREGATION_CALL = CallDefaults(
    input_tokens=Range(low=300, expected=1000, high=5000),
    output_tokens=Range(low=100, expected=500, high=1500),
    seconds=Range(low=1, expected=5, high=20),
)
"""The call combining the subtasks' outputs (only when a plan has more than one subtask)."""

PLANNER_DURATION_SPREAD = (0.5, 2.0)
"""A planner's `estimated_duration` is taken as expected, with low/high at these factors."""

HISTORY_ROWS = 5000
"""The most recent finished subtasks (and tasks) an estimate learns from."""
