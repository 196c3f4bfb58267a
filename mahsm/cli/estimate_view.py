"""`mahsm submit --estimate`: the estimate as a table (nothing runs)."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from mahsm.cli.common import console, say
from mahsm.contracts.estimate import EstimateReport, Figures, Range


def _span(value: Range, *, digits: int = 0, money: bool = False) -> str:
    def show(x: float) -> str:
        return f"${x:.{digits}f}" if money else f"{x:,.{digits}f}"

    return f"{show(value.expected)} ({show(value.low)}-{show(value.high)})"


def _row(table: Table, name: str, f: Figures, basis: str) -> None:
    table.add_row(
        escape(name),
        basis,
        _span(f.llm_calls, digits=1),
        _span(f.input_tokens),
        _span(f.output_tokens),
        _span(f.cost_usd, digits=4, money=True),
        _span(f.duration_s, digits=1),
    )


def print_estimate(report: EstimateReport) -> None:
    """Per step and in total: expected (low-high) calls, tokens, cost and seconds.

    The basis column says where a step's figures come from, with the number of finished
    subtasks they were learned from; the total's seconds follow the critical path.
    """
    estimate = report.estimate
    table = Table(
        "step",
        "basis",
        "LLM calls",
        "input tokens",
        "output tokens",
        "cost USD",
        "seconds",
        title=f"Estimate on {estimate.model} (expected, low-high)",
        title_justify="left",
    )
    own = estimate.task_calls
    for step in [*estimate.subtasks, *([own] if own is not None else [])]:
        name = step.id if step is not own else "(planning, aggregation)"
        _row(table, name, step.figures, f"{step.basis.value} ({step.samples})")
    _row(table, "total", estimate.total, "")
    console.print(table)
    if estimate.critical_path:
        say("[dim]Critical path:[/dim] " + escape(" -> ".join(estimate.critical_path)))
    if report.planning_usage is not None:
        spent = report.planning_usage
        say(
            f"[dim]This estimate planned once: {spent.input_tokens} + {spent.output_tokens}"
            f" tokens, ${spent.cost_usd:.4f}.[/dim]"
        )
    for note in estimate.notes:
        say(f"[dim]Note: {escape(note)}[/dim]")
    say("[dim]Nothing ran. Submit without --estimate to run it.[/dim]")
