"""The pure estimate: defaults, learned figures, ranges, the critical path and the actuals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mahsm.contracts.estimate import Basis, Range
from mahsm.contracts.task import (
    Plan,
    SubtaskResult,
    SubtaskState,
    SubtaskStatus,
    TaskState,
    TaskStatus,
    Usage,
)
from mahsm.estimates import defaults
from mahsm.estimates.actuals import with_actuals
from mahsm.estimates.figures import TASK_STEP_ID, widened
from mahsm.estimates.history import ANY, History, Observed
from mahsm.estimates.plan_estimate import estimate_plan
from mahsm.estimates.schedule import schedule

PRICE = (1.0, 4.0)  # USD per million input, output tokens


def plan(*subtasks: tuple[str, list[str]], caps: str = "data_analysis") -> Plan:
    return Plan.model_validate(
        {
            "subtasks": [
                {
                    "id": sid,
                    "description": f"do {sid}",
                    "depends_on": deps,
                    "required_capabilities": [caps],
                }
                for sid, deps in subtasks
            ]
        }
    )


def observed(tokens_in: float, tokens_out: float, seconds: float, calls: float, n: int) -> Observed:
    return Observed(
        samples=n,
        input_tokens=Range(low=tokens_in * 0.8, expected=tokens_in, high=tokens_in * 1.2),
        output_tokens=Range(low=tokens_out * 0.8, expected=tokens_out, high=tokens_out * 1.2),
        seconds=Range(low=seconds * 0.8, expected=seconds, high=seconds * 1.2),
        llm_calls=Range(low=calls, expected=calls, high=calls),
    )


def test_no_history_uses_the_documented_defaults() -> None:
    estimate = estimate_plan(
        plan(("a", [])), model="openai/x", history=History(), price=PRICE, max_iterations=5
    )
    step = estimate.subtasks[0]
    assert step.basis == Basis.DEFAULT and step.samples == 0
    calls = step.figures.llm_calls
    assert (calls.low, calls.expected, calls.high) == (1, defaults.AGENT_CALLS_EXPECTED, 5)
    call = defaults.AGENT_CALL
    assert step.figures.input_tokens.expected == 2 * call.input_tokens.expected
    assert step.figures.output_tokens.high == 5 * call.output_tokens.high
    expected_cost = (2 * 1500 * 1.0 + 2 * 300 * 4.0) / 1e6
    assert abs(step.figures.cost_usd.expected - expected_cost) < 1e-12
    assert estimate.task_calls is None  # one subtask, a given plan: no task call
    assert any("defaults" in note for note in estimate.notes)


def test_history_of_the_same_capabilities_and_model_is_used_first() -> None:
    history = History(
        subtasks={
            ("data_analysis", "m/1"): observed(1000, 100, 2.0, 3, n=100),
            ("data_analysis", ANY): observed(9000, 900, 20.0, 7, n=200),
            (ANY, "m/1"): observed(5000, 500, 10.0, 5, n=300),
        }
    )
    step = estimate_plan(plan(("a", [])), model="m/1", history=history, price=PRICE).subtasks[0]
    assert step.basis == Basis.HISTORY and step.samples == 100
    assert step.figures.input_tokens.expected == 1000
    assert step.figures.llm_calls.expected == 3
    other = estimate_plan(plan(("a", [])), model="m/2", history=history, price=PRICE).subtasks[0]
    assert other.basis == Basis.HISTORY_CAPABILITIES and other.figures.duration_s.expected == 20
    code = estimate_plan(
        plan(("a", []), caps="code_generation"), model="m/1", history=history, price=PRICE
    ).subtasks[0]
    assert code.basis == Basis.HISTORY_MODEL and code.figures.output_tokens.expected == 500


def test_few_samples_widen_the_range_and_calls_stay_within_max_iterations() -> None:
    history = History(subtasks={("data_analysis", "m/1"): observed(1000, 100, 2.0, 12, n=1)})
    step = estimate_plan(
        plan(("a", [])), model="m/1", history=history, price=PRICE, max_iterations=4
    ).subtasks[0]
    assert step.figures.input_tokens.low == 500 and step.figures.input_tokens.high == 1500
    assert step.figures.llm_calls.high == 4
    assert widened(Range(low=1, expected=2, high=3), 10_000) == Range(low=1, expected=2, high=3)


def test_duration_follows_the_critical_path_and_tokens_add_up() -> None:
    history = History(subtasks={("data_analysis", "m/1"): observed(1000, 100, 10.0, 2, n=100)})
    diamond = plan(("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["b", "c"]))
    estimate = estimate_plan(diamond, model="m/1", history=history, price=PRICE, plans=True)
    own = estimate.task_calls
    assert own is not None and own.id == TASK_STEP_ID  # planning + aggregation, by default
    assert own.figures.llm_calls.expected == 2 and own.figures.llm_calls.high == 4
    assert estimate.total.duration_s.expected == 30 + own.figures.duration_s.expected
    assert estimate.critical_path[0] == "a" and estimate.critical_path[-1] == "d"
    assert estimate.total.input_tokens.expected == 4 * 1000 + own.figures.input_tokens.expected
    assert estimate.total.llm_calls.expected == 4 * 2 + 2
    total = estimate.total.cost_usd
    assert total.low <= total.expected <= total.high


def test_max_parallel_serialises_independent_subtasks() -> None:
    wide = plan(("a", []), ("b", []), ("c", []))
    durations = {"a": 5.0, "b": 5.0, "c": 5.0}
    assert schedule(wide, durations).makespan_s == 5
    limited = schedule(wide, durations, max_parallel=1)
    assert limited.makespan_s == 15 and limited.critical_path == ["a", "b", "c"]


def test_schedule_picks_the_longest_chain() -> None:
    shape = plan(("a", []), ("slow", ["a"]), ("fast", ["a"]), ("end", ["fast"]))
    found = schedule(shape, {"a": 1, "slow": 10, "fast": 1, "end": 1})
    assert found.makespan_s == 11 and found.critical_path == ["a", "slow"]


def test_actuals_are_set_beside_the_estimate_with_relative_errors() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    history = History(subtasks={("data_analysis", "m/1"): observed(1000, 100, 10.0, 2, n=100)})
    two = plan(("a", []), ("b", ["a"]))
    estimate = estimate_plan(
        two, model="m/1", history=history, price=PRICE, spent_before=Usage(input_tokens=50)
    )
    finished = [
        SubtaskState(
            subtask=s,
            result=SubtaskResult(
                status=SubtaskStatus.COMPLETED,
                started_at=start + timedelta(seconds=i * 10),
                finished_at=start + timedelta(seconds=i * 10 + 10),
                llm_calls=2,
            ),
        )
        for i, s in enumerate(two.subtasks)
    ]
    state = TaskState(
        task_id="task-1",
        description="a test task",
        status=TaskStatus.COMPLETED,
        created_at=start,
        updated_at=start,
        subtasks=finished,
        usage=Usage(input_tokens=50 + 2000, output_tokens=200, cost_usd=0.1),
        estimate=estimate,
    )
    ended = with_actuals(state, start + timedelta(seconds=30))
    assert ended is not None and ended.actual is not None
    actual = ended.actual
    assert (actual.input_tokens, actual.output_tokens, actual.llm_calls) == (2000, 200, 5)
    assert actual.duration_s == 30
    expected_tokens = estimate.total.input_tokens.expected + estimate.total.output_tokens.expected
    assert actual.tokens_error == round(2200 / expected_tokens - 1, 4)
    assert with_actuals(state.model_copy(update={"estimate": None}), start) is None


def test_the_aggregation_reads_the_plans_own_outputs() -> None:
    overhead = Observed(
        samples=100,
        input_tokens=Range(low=100, expected=100, high=100),
        output_tokens=Range(low=50, expected=50, high=50),
        seconds=Range(low=1, expected=1, high=1),
    )
    history = History(
        subtasks={("data_analysis", "m/1"): observed(1000, 100, 10.0, 2, n=100)},
        tasks={("m/1", False, True): overhead},
    )
    wide = plan(("a", []), ("b", []), ("c", []))
    own = estimate_plan(wide, model="m/1", history=history, price=PRICE).task_calls
    assert own is not None and own.basis == Basis.HISTORY
    # What the history left out (the subtasks' outputs), added back for this plan's three.
    assert own.figures.input_tokens.expected == 100 + 3 * 100
    assert own.figures.output_tokens.expected == 50
