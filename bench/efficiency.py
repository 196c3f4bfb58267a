"""Engine efficiency: MAHSM against a one-workflow floor, interleaved on the same server.

The floor (`bench.one_workflow_floor`) runs each task the way the leanest durable agent
runtimes do (pydantic-ai's Temporal integration, OpenAI Agents on Temporal): one workflow,
every LLM and tool call an activity, nothing else. It calls MAHSM's own `llm_complete` and
`tool_execute` activities with the same scripted scenario, so the difference is the engine.

Workloads (scripted model; rules in `bench.efficiency_workloads.scenario`):
- (a) one agent, 3 sequential tool calls then a final answer, L ms per LLM call; MAHSM gets a
  one-subtask plan in the request. Ideal: 4 x L.
- (b) plan -> 10 parallel agents (one tool call each, then a final answer) -> aggregate, L ms
  per call; MAHSM plans with the planner (a scripted plan rule), with its default
  `max_parallel` and with `max_parallel=10`. Ideal: 4 x L.
- (c) `--tasks` tasks of 5 subtasks started at once, zero-latency model: tasks/s, CPU seconds
  per task of each process (Temporal server, this process = workers + client, Postgres) and
  Temporal events and workflow runs per task (the task's history plus its children's).

With `--floor-via-matching`, (a) and (c) also run the floor with eager activity execution
off (`floor via matching`): every activity dispatched by the server's matching to a poller,
as MAHSM's calls to a capability pool's queue are. It tells how much of the gap to the floor
is that dispatch alone. The targets stay ratios against the (eager) floor.

Each target is printed as a ratio measured in this run (medians over `--repeats` runs of (a)
and (b), `--rounds` rounds of (c); the order of MAHSM and floor alternates between runs).

Run: `python -m bench.efficiency [--quick] [--latency-ms 200] [--repeats 5] [--rounds 3]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from bench.common import (
    CpuMeter,
    Stack,
    add_stack_arguments,
    bench_stack,
    engine_settings,
    load_average,
    median,
    print_table,
    running_workers,
    write_results,
    write_scenario,
)
from bench.efficiency_workloads import (
    FANOUT_C,
    floor_request,
    mahsm_request,
    run_floor,
    run_mahsm,
    running_floor,
    scenario,
    total_stats,
)
from mahsm.settings import Settings

Runner = Callable[[], Awaitable[tuple[float, list[str]]]]

# (workload, variant, limit, "max" or "min"): the targets.
TARGETS = [
    ("a", "MAHSM / floor makespan", 1.05, "max"),
    ("a", "MAHSM / ideal makespan", 1.25, "max"),
    ("b", "MAHSM / floor makespan", 1.05, "max"),
    ("b", "MAHSM / ideal makespan", 1.4, "max"),
    ("c", "MAHSM / floor tasks/s", 0.9, "min"),
    ("c", "MAHSM / floor CPU s/task", 1.2, "max"),
    ("c", "MAHSM / floor events/task", 1.3, "max"),
]


class Bench:
    """The running stack, MAHSM's workers and the floor's, and how to run each variant."""

    def __init__(
        self, stack: Stack, settings: Settings, floor_queue: str, matching_queue: str | None
    ) -> None:
        self.stack = stack
        self.settings = settings
        self.floor_queue = floor_queue
        self.matching_queue = matching_queue  # the floor without eager activities, or None

    def mahsm(self, workload: str, n: int = 1, max_parallel: int | None = None) -> Runner:
        return lambda: run_mahsm(
            self.stack,
            self.settings.queue_prefix,
            [mahsm_request(workload, max_parallel=max_parallel) for _ in range(n)],
        )

    def floor(self, workload: str, n: int = 1, *, eager: bool = True) -> Runner:
        queue = self.floor_queue if eager else self.matching_queue
        assert queue is not None, "the floor via matching runs with --floor-via-matching"
        return lambda: run_floor(
            self.stack, queue, [floor_request(workload, self.settings) for _ in range(n)]
        )

    def with_matching(self, variants: dict[str, Runner], workload: str, n: int = 1) -> None:
        """Add the floor via matching to `variants` when this run measures it."""
        if self.matching_queue is not None:
            variants["floor via matching"] = self.floor(workload, n, eager=False)


async def makespans(
    bench: Bench, variants: dict[str, Runner], repeats: int
) -> dict[str, dict[str, Any]]:
    """Run every variant `repeats` times, interleaved, rotating which goes first."""
    names = list(variants)
    runs: dict[str, list[float]] = {n: [] for n in names}
    last: dict[str, list[str]] = {}
    for repeat in range(repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            seconds, ids = await variants[name]()
            runs[name].append(seconds)
            last[name] = ids
    results = {}
    for name in names:
        stats = await total_stats(bench.stack.client, last[name])
        results[name] = {
            "makespan_s": median(runs[name]),
            "runs_s": runs[name],
            "per_task": stats.per_task(1),
        }
    return results


async def workload_ab(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    ideal = 4 * args.latency_ms / 1000
    out: dict[str, Any] = {"ideal_s": ideal}
    variants_a = {"mahsm": bench.mahsm("a"), "floor": bench.floor("a")}
    bench.with_matching(variants_a, "a")
    out["a"] = await makespans(bench, variants_a, args.repeats)
    print("(a): done", flush=True)
    out["b"] = await makespans(
        bench,
        {
            "mahsm": bench.mahsm("b"),
            "mahsm max_parallel=10": bench.mahsm("b", max_parallel=10),
            "floor": bench.floor("b"),
        },
        args.repeats,
    )
    print("(b): done", flush=True)
    return out


async def workload_c(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    n = args.tasks
    meter = CpuMeter(bench.stack, {"bench process": os.getpid()})
    variants = {"mahsm": bench.mahsm("c", n), "floor": bench.floor("c", n)}
    bench.with_matching(variants, "c", n)
    names = list(variants)
    rounds: list[dict[str, Any]] = []
    for round_no in range(args.rounds):
        row: dict[str, Any] = {"round": round_no}
        order = names if round_no % 2 == 0 else names[::-1]
        for name in order:
            before = meter.sample()
            seconds, ids = await variants[name]()
            after = meter.sample()
            cpu = {k: (after[k] - before[k]) / n for k in before}
            cpu["total"] = sum(cpu.values())
            stats = await total_stats(bench.stack.client, ids)
            row[name] = {
                "seconds": seconds,
                "tasks_per_s": n / seconds,
                "cpu_s_per_task": cpu,
                "per_task": stats.per_task(n),
            }
        rounds.append(row)
        print(f"(c) round {round_no}: done", flush=True)

    def med(name: str, *path: str) -> float:
        """Median over the rounds of the figure at `path` in `name`'s results."""
        values = []
        for row in rounds:
            value = row[name]
            for key in path:
                value = value[key]
            values.append(float(value))
        return median(values)

    summary = {
        name: {
            "tasks_per_s": med(name, "tasks_per_s"),
            "cpu_s_per_task": {
                k: med(name, "cpu_s_per_task", k) for k in rounds[0][name]["cpu_s_per_task"]
            },
            "events_per_task": med(name, "per_task", "events"),
            "workflows_per_task": med(name, "per_task", "workflows"),
            "activities_per_task": rounds[-1][name]["per_task"]["activities"],
            "local_activities_per_task": rounds[-1][name]["per_task"]["local_activities"],
        }
        for name in variants
    }
    return {"tasks": n, "subtasks": FANOUT_C, "variants": names, "rounds": rounds, **summary}


def ratios(ab: dict[str, Any] | None, c: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Each target with its measured ratio."""
    rows: list[dict[str, Any]] = []

    def add(workload: str, what: str, mahsm: float, base: float, limit: float, kind: str) -> None:
        ratio = mahsm / base
        met = ratio <= limit if kind == "max" else ratio >= limit
        sign = "<=" if kind == "max" else ">="
        rows.append(
            {
                "workload": workload,
                "target": what,
                "mahsm": mahsm,
                "baseline": base,
                "ratio": ratio,
                "limit": f"{sign} {limit:g}",
                "met": met,
            }
        )

    if ab is not None:
        ideal = ab["ideal_s"]
        for workload, variants in (("a", ["mahsm"]), ("b", ["mahsm", "mahsm max_parallel=10"])):
            floor = ab[workload]["floor"]["makespan_s"]
            for variant in variants:
                label = f"({workload}) {variant}"
                value = ab[workload][variant]["makespan_s"]
                add(label, "makespan / floor", value, floor, 1.05, "max")
                add(
                    label, "makespan / ideal", value, ideal, 1.25 if workload == "a" else 1.4, "max"
                )
    if c is not None:
        m, f = c["mahsm"], c["floor"]
        add("(c)", "tasks/s / floor", m["tasks_per_s"], f["tasks_per_s"], 0.9, "min")
        add(
            "(c)",
            "CPU s/task / floor",
            m["cpu_s_per_task"]["total"],
            f["cpu_s_per_task"]["total"],
            1.2,
            "max",
        )
        add("(c)", "events/task / floor", m["events_per_task"], f["events_per_task"], 1.3, "max")
    return rows


def report(args: argparse.Namespace, ab: dict[str, Any] | None, c: dict[str, Any] | None) -> None:
    if ab is not None:
        print()
        print(
            f"(a), (b): makespan (s), medians of {args.repeats} runs, L = {args.latency_ms:g} ms,"
            f" ideal {ab['ideal_s']:.2f} s; per task: LLM calls, tool calls, events, workflows"
        )
        rows = []
        for workload in ("a", "b"):
            for variant, v in ab[workload].items():
                acts = v["per_task"]["activities"]
                rows.append(
                    [
                        f"({workload}) {variant}",
                        v["makespan_s"],
                        v["makespan_s"] / ab["ideal_s"],
                        int(acts.get("llm_complete", 0)),
                        int(acts.get("tool_execute", 0)),
                        int(sum(acts.values()) + v["per_task"]["local_activities"]),
                        int(v["per_task"]["events"]),
                        int(v["per_task"]["workflows"]),
                    ]
                )
        print_table(
            ["run", "makespan", "/ideal", "LLM", "tools", "all activities", "events", "workflows"],
            rows,
        )
    if c is not None:
        print()
        print(
            f"(c): {c['tasks']} tasks x {c['subtasks']} subtasks at once, zero latency,"
            f" medians of {len(c['rounds'])} rounds; CPU seconds per task"
        )
        procs = list(c["mahsm"]["cpu_s_per_task"])
        print_table(
            ["", "tasks/s", *(f"CPU {p}" for p in procs), "events/task", "workflows/task"],
            [
                [
                    name,
                    c[name]["tasks_per_s"],
                    *(f"{c[name]['cpu_s_per_task'][p]:.3f}" for p in procs),
                    c[name]["events_per_task"],
                    c[name]["workflows_per_task"],
                ]
                for name in c["variants"]
            ],
        )
    print()
    print("Targets (ratios measured in this run)")
    print_table(
        ["workload", "ratio", "MAHSM", "floor or ideal", "value", "target", "met"],
        [
            [
                r["workload"],
                r["target"],
                f"{r['mahsm']:.3f}",
                f"{r['baseline']:.3f}",
                r["ratio"],
                r["limit"],
                "yes" if r["met"] else "**no**",
            ]
            for r in ratios(ab, c)
        ],
    )


async def main_async(args: argparse.Namespace) -> None:
    workloads = set(args.workloads.split(","))
    load_before = load_average()
    ab = c = None
    async with bench_stack(args) as stack:
        scenario_file = write_scenario(stack.root / "efficiency.yaml", scenario(args.latency_ms))
        settings = engine_settings(stack, scenario_file)
        async with AsyncExitStack() as running:
            await running.enter_async_context(running_workers(stack, settings))
            queue = await running.enter_async_context(running_floor(stack, settings))
            matching = None
            if args.floor_via_matching:
                matching = await running.enter_async_context(
                    running_floor(stack, settings, eager=False)
                )
            bench = Bench(stack, settings, queue, matching)
            # Warm-up, not counted: imports, sandbox caches, connections.
            for warm in (
                bench.mahsm("b"),
                bench.floor("b"),
                bench.mahsm("c", 5),
                bench.floor("c", 5),
            ):
                await warm()
            if matching is not None:
                await bench.floor("c", 5, eager=False)()
            if workloads & {"a", "b"}:
                ab = await workload_ab(bench, args)
            if "c" in workloads:
                c = await workload_c(bench, args)
    report(args, ab, c)
    path = write_results(
        "efficiency",
        {
            "quick": args.quick,
            "latency_ms": args.latency_ms,
            "repeats": args.repeats,
            "temporal_db": args.temporal_db,
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "ab": ab,
            "c": c,
            "targets": ratios(ab, c),
        },
        args.out,
    )
    print(f"\nwrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=200.0, help="LLM latency L of (a), (b)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each (a), (b) variant")
    parser.add_argument("--rounds", type=int, default=3, help="MAHSM/floor round pairs of (c)")
    parser.add_argument("--tasks", type=int, default=50, help="concurrent tasks per (c) round")
    parser.add_argument("--workloads", default="a,b,c", help="comma-separated subset of a,b,c")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2 repeats, 1 round of 10 tasks"
    )
    parser.add_argument(
        "--floor-via-matching",
        action="store_true",
        help="also run (a) and (c) on the floor with eager activity execution off",
    )
    add_stack_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.rounds, args.tasks = 2, 1, 10
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
