"""Estimate error: how far `POST /tasks/estimate` is from what scripted tasks really spend.

A mixed set of scripted tasks with known cost (the scripted model counts words as tokens and
the scenario declares its prices; every call has a fixed latency): a chain of three, a
fan-out of four, a single subtask with a tool round (two LLM calls), and a planned task (no
plan given: the planner answers with a plan). Each kind runs `--seed-runs` times to seed the
history in Postgres; then, per kind and repeat, the estimate is made the way the API makes it
(`PlanEstimateWorkflow`: the planner asked once when there is no plan) and the same request
runs. Errors are relative, |expected - actual| / actual, for cost, tokens and duration (the
task's start to its end); `in range` counts actuals within [low, high].

Run: `python -m bench.estimate_error [--seed-runs 3] [--repeats 3] [--latency-ms 100]`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench.common import (
    Stack,
    add_stack_arguments,
    bench_stack,
    engine_settings,
    median,
    print_table,
    running_workers,
    write_results,
    write_scenario,
)
from mahsm.contracts.estimate import EstimateReport, Range
from mahsm.contracts.task import Plan, TaskOptions, TaskRequest, TaskState, TaskStatus
from mahsm.estimates.run import request_estimate
from mahsm.tasks import start_task

MODEL = "scripted/bench"
PRICES = {"input_per_mtok": 3.0, "output_per_mtok": 15.0}


def _subtask(sid: str, text: str, *deps: str, cap: str) -> dict[str, Any]:
    return {
        "id": sid,
        "description": text,
        "depends_on": list(deps),
        "required_capabilities": [cap],
    }


PLANS: dict[str, dict[str, Any]] = {
    "chain3": {
        "subtasks": [
            _subtask("fetch", "Fetch the raw page", cap="web_scraping"),
            _subtask("clean", "Clean the raw page", "fetch", cap="web_scraping"),
            _subtask("extract", "Extract the fields", "clean", cap="web_scraping"),
        ]
    },
    "fanout4": {
        "subtasks": [
            _subtask("load", "Load the table", cap="data_analysis"),
            *(
                _subtask(f"stat{i}", f"Compute statistic {i}", "load", cap="data_analysis")
                for i in range(3)
            ),
        ]
    },
    "tool1": {
        "subtasks": [_subtask("calc", "Calculate the total with the tool", cap="code_generation")]
    },
}
# Asked without a plan: the planner answers with this one.
PLANNED = {
    "subtasks": [
        _subtask("draft", "Draft the summary", cap="file_processing"),
        _subtask("polish", "Polish the summary", "draft", cap="file_processing"),
    ]
}
DESCRIPTIONS = {
    "chain3": "Scrape the page and extract its fields",
    "fanout4": "Load the table and compute three statistics",
    "tool1": "Calculate the total of the order",
    "planned": "Write a summary of the quarter for the board",
}


def _words(n: int, word: str) -> str:
    return " ".join(f"{word}{i}" for i in range(n))


def scenario(latency_ms: float) -> dict[str, Any]:
    """Answers of different lengths and latencies per capability; one tool round."""

    def answer(match: str, words: int, factor: float) -> dict[str, Any]:
        return {
            "purpose": "agent_step",
            "match": r"Your subtask:\s*" + match,
            "latency_ms": latency_ms * factor,
            "respond": {"content": _words(words, "w")},
        }

    return {
        "prices": PRICES,
        "latency_ms": latency_ms,
        "rules": [
            {
                "purpose": "plan",
                "match": "summary of the quarter",
                "respond": {"plan": PLANNED},
            },
            answer("Fetch the raw page", 200, 2.0),
            answer("Clean the raw page", 120, 1.0),
            answer("Extract the fields", 40, 1.0),
            answer("Load the table", 80, 1.5),
            answer("Compute statistic", 30, 1.0),
            {
                "purpose": "agent_step",
                "match": "Calculate the total",
                "after_tool": False,
                "respond": {
                    "content": "Using the calculator.",
                    "tool_calls": [{"name": "calculator", "arguments": {"expression": "17*23"}}],
                },
            },
            {
                "purpose": "agent_step",
                "match": "Calculate the total",
                "after_tool": True,
                "respond": {"content": "The total is {last_tool_result}."},
            },
            answer("Draft the summary", 150, 2.0),
            answer("Polish the summary", 100, 1.0),
            {"purpose": "aggregate", "respond": {"content": "FINAL:\n{context}"}},
        ],
    }


def request_of(kind: str) -> TaskRequest:
    plan = Plan.model_validate(PLANS[kind]) if kind in PLANS else None
    return TaskRequest(description=DESCRIPTIONS[kind], plan=plan, options=TaskOptions(model=MODEL))


async def run_task(stack: Stack, prefix: str, request: TaskRequest) -> TaskState:
    handle = await start_task(stack.client, request, queue_prefix=prefix)
    state: TaskState = await handle.result()
    if state.status != TaskStatus.COMPLETED:
        raise RuntimeError(f"{handle.id} ended {state.status}: {state.error}")
    return state


def _error(expected: float, actual: float) -> float:
    return abs(expected - actual) / actual if actual else 0.0


def _within(value: Range, actual: float) -> bool:
    return value.low <= actual <= value.high


def compare(kind: str, report: EstimateReport, state: TaskState) -> dict[str, Any]:
    total = report.estimate.total
    tokens = state.usage.total_tokens
    duration = (state.updated_at - state.created_at).total_seconds()
    expected_tokens = total.input_tokens.expected + total.output_tokens.expected
    return {
        "kind": kind,
        "cost_expected": total.cost_usd.expected,
        "cost_actual": state.usage.cost_usd,
        "cost_error": _error(total.cost_usd.expected, state.usage.cost_usd),
        "tokens_expected": expected_tokens,
        "tokens_actual": tokens,
        "tokens_error": _error(expected_tokens, tokens),
        "duration_expected": total.duration_s.expected,
        "duration_actual": duration,
        "duration_error": _error(total.duration_s.expected, duration),
        "cost_in_range": _within(total.cost_usd, state.usage.cost_usd),
        "duration_in_range": _within(total.duration_s, duration),
        "bases": sorted({s.basis.value for s in report.estimate.subtasks}),
    }


async def main_async(args: argparse.Namespace) -> None:
    kinds = [*PLANS, "planned"]
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    async with bench_stack(args) as stack:
        scenario_file = write_scenario(stack.root / "estimate.yaml", scenario(args.latency_ms))
        settings = engine_settings(stack, scenario_file)
        prefix = settings.queue_prefix
        async with running_workers(stack, settings):
            for _ in range(args.seed_runs):  # the history the estimates learn from
                for kind in kinds:
                    await run_task(stack, prefix, request_of(kind))
            for _ in range(args.repeats):
                for kind in kinds:
                    request = request_of(kind)
                    report = await request_estimate(
                        stack.client, request, queue_prefix=prefix, timeout_s=120
                    )
                    rows.append(compare(kind, report, await run_task(stack, prefix, request)))
    print_table(
        ["kind", "cost est", "cost", "err", "tokens est", "tokens", "err", "s est", "s", "err"],
        [
            [
                r["kind"],
                f"{r['cost_expected']:.6f}",
                f"{r['cost_actual']:.6f}",
                r["cost_error"],
                r["tokens_expected"],
                r["tokens_actual"],
                r["tokens_error"],
                r["duration_expected"],
                r["duration_actual"],
                r["duration_error"],
            ]
            for r in rows
        ],
    )
    summary = {
        f"{figure}_error_{stat}": fn([r[f"{figure}_error"] for r in rows])
        for figure in ("cost", "tokens", "duration")
        for stat, fn in (("median", median), ("max", max))
    }
    summary["cost_in_range"] = sum(r["cost_in_range"] for r in rows) / len(rows)
    summary["duration_in_range"] = sum(r["duration_in_range"] for r in rows) / len(rows)
    print()
    print_table(
        ["figure", "median relative error", "max relative error"],
        [
            [figure, summary[f"{figure}_error_median"], summary[f"{figure}_error_max"]]
            for figure in ("cost", "tokens", "duration")
        ],
    )
    print(
        f"\nactuals within [low, high]: cost {summary['cost_in_range']:.0%},"
        f" duration {summary['duration_in_range']:.0%}"
    )
    path = write_results(
        "estimate_error",
        {
            "seed_runs": args.seed_runs,
            "repeats": args.repeats,
            "latency_ms": args.latency_ms,
            "seconds": round(time.monotonic() - started, 1),
            "summary": summary,
            "rows": rows,
        },
        args.out,
    )
    print(f"results: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-runs", type=int, default=3, help="runs per kind before estimating")
    parser.add_argument("--repeats", type=int, default=3, help="estimates and runs per kind")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="scripted LLM latency")
    add_stack_arguments(parser)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
