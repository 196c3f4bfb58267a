"""DAG overhead: MAHSM's makespan against the critical-path ideal and two baselines.

Shapes: a chain of 5, a fan-out of 10, a diamond (a -> b, c -> d) and a seeded random DAG of
20 nodes. Every LLM call of the scripted model takes L ms (default 200): the planner call (a
scripted plan rule returns the shape, so planning is on the path as in production), one agent
step per subtask (a final answer, no tools) and the aggregation call.

For each shape it reports, as medians over `--repeats` runs:
- `mahsm`: client-observed makespan of the task (start request to result);
- `ideal`: (depth + 2) * L, the critical path counting the planner and aggregation calls;
- `asyncio`: the same DAG run by a plain in-process asyncio executor with the same sleeps
  (the floor without durability);
- `mahsm seq`: the same task with `max_parallel = 1`, i.e. the subtasks one after another;
- `mahsm default`: the same task without `max_parallel`, i.e. the engine's default (the
  `mahsm` column sets it to the number of nodes);
- the DAG phase alone (from the task entering `running` to its last subtask completing),
  parallel and sequential, whose ratio is the speed-up of running the DAG concurrently.

Run: `python -m bench.dag_overhead [--latency-ms 200] [--repeats 3] [--shapes chain5,...]`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

from bench.common import (
    Stack,
    add_stack_arguments,
    bench_stack,
    engine_settings,
    load_average,
    median,
    print_table,
    running_floor_workers,
    running_workers,
    write_results,
    write_scenario,
)
from bench.floor_workflows import FloorTask, FloorTaskInput
from mahsm.contracts.task import (
    Capability,
    Plan,
    Subtask,
    TaskOptions,
    TaskRequest,
    TaskState,
    TaskStatus,
)
from mahsm.tasks import start_task

SHAPES = ("chain5", "fanout10", "diamond", "random20")


@dataclass(frozen=True)
class Dag:
    """A plan shape: node ids in a topological order and each node's dependencies."""

    name: str
    deps: dict[str, list[str]]

    @property
    def depth(self) -> int:
        """Number of nodes on the longest path."""
        level: dict[str, int] = {}
        for node, deps in self.deps.items():
            level[node] = 1 + max((level[d] for d in deps), default=0)
        return max(level.values())

    @property
    def edges(self) -> int:
        return sum(len(d) for d in self.deps.values())

    def plan(self) -> Plan:
        return Plan(
            subtasks=[
                Subtask(
                    id=node,
                    description=f"benchmark step {node}",
                    required_capabilities=[Capability.DATA_ANALYSIS],
                    depends_on=deps,
                )
                for node, deps in self.deps.items()
            ],
            rationale=f"benchmark shape {self.name}",
        )


def random_dag(n: int, seed: int) -> dict[str, list[str]]:
    """A seeded random DAG: node i depends on 0-3 earlier nodes, biased to recent ones."""
    rng = random.Random(seed)
    deps: dict[str, list[str]] = {}
    for i in range(n):
        candidates = list(range(max(0, i - 6), i))
        k = min(len(candidates), rng.choice((0, 1, 1, 2, 2, 3)))
        deps[f"n{i:02d}"] = [f"n{j:02d}" for j in sorted(rng.sample(candidates, k))]
    return deps


def make_shape(name: str, seed: int) -> Dag:
    if name == "chain5":
        return Dag(name, {f"s{i}": ([f"s{i - 1}"] if i else []) for i in range(5)})
    if name == "fanout10":
        return Dag(name, {f"f{i}": [] for i in range(10)})
    if name == "diamond":
        return Dag(name, {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]})
    if name == "random20":
        return Dag(name, random_dag(20, seed))
    raise ValueError(f"unknown shape {name!r}; choose from {', '.join(SHAPES)}")


def scenario(dags: list[Dag], latency_ms: float) -> dict[str, Any]:
    """Every call takes `latency_ms`; one plan rule per shape, selected by a tag in the task."""
    return {
        "latency_ms": latency_ms,
        "jitter_ms": 0,
        "seed": 1,
        "rules": [
            {
                "purpose": "plan",
                "match": rf"\[shape={dag.name}\]",
                "respond": {"plan": dag.plan().model_dump(mode="json")},
            }
            for dag in dags
        ],
    }


async def asyncio_floor(dag: Dag, latency_s: float, *, sequential: bool) -> float:
    """The DAG with the same sleeps, in plain asyncio: no persistence, no network."""

    async def call() -> None:
        await asyncio.sleep(latency_s)

    start = time.perf_counter()
    await call()  # plan
    if sequential:
        for _ in dag.deps:
            await call()
    else:
        done: dict[str, asyncio.Task[None]] = {}

        async def node(deps: list[str]) -> None:
            await asyncio.gather(*(done[d] for d in deps))
            await call()

        for name, deps in dag.deps.items():
            done[name] = asyncio.create_task(node(deps))
        await asyncio.gather(*done.values())
    await call()  # aggregate
    return time.perf_counter() - start


async def run_task(
    stack: Stack, prefix: str, dag: Dag, *, max_parallel: int | None
) -> dict[str, float]:
    """One MAHSM task of shape `dag` (`max_parallel` None: the engine's default); returns its
    makespan and DAG-phase duration (s)."""
    options = TaskOptions() if max_parallel is None else TaskOptions(max_parallel=max_parallel)
    request = TaskRequest(
        description=f"Benchmark DAG [shape={dag.name}] {uuid.uuid4().hex[:8]}", options=options
    )
    start = time.perf_counter()
    handle = await start_task(stack.client, request, queue_prefix=prefix)
    state: TaskState = await handle.result()
    makespan = time.perf_counter() - start
    if state.status != TaskStatus.COMPLETED or len(state.subtasks) != len(dag.deps):
        raise RuntimeError(f"task {state.task_id} ended {state.status}: {state.error}")
    events = await stack.pool.fetch(
        "SELECT kind, status, created_at FROM task_events WHERE task_id = $1 ORDER BY seq",
        state.task_id,
    )
    running = next(
        e["created_at"] for e in events if e["kind"] == "task_status" and e["status"] == "running"
    )
    last = max(
        e["created_at"]
        for e in events
        if e["kind"] == "subtask_status" and e["status"] == "completed"
    )
    return {"makespan_s": makespan, "dag_phase_s": (last - running).total_seconds()}


def sequential_deps(dag: Dag) -> dict[str, list[str]]:
    """The same nodes, one after another (the topological order of the plan)."""
    names = list(dag.deps)
    return {n: ([names[i - 1]] if i else []) for i, n in enumerate(names)}


async def run_floor_task(
    stack: Stack, queues: tuple[str, str], deps: dict[str, list[str]], latency_ms: float
) -> float:
    """The DAG as bare Temporal: plan activity, one child with one activity per node,
    aggregate activity, all sleeping L; returns the client-observed makespan (s)."""
    start = time.perf_counter()
    await stack.client.execute_workflow(
        FloorTask.run,
        FloorTaskInput(
            before=[latency_ms],
            deps=deps,
            child_activities=[latency_ms],
            after=[latency_ms],
            child_queue=queues[1],
        ),
        id=f"floor-{uuid.uuid4()}",
        task_queue=queues[0],
    )
    return time.perf_counter() - start


async def measure(
    stack: Stack, prefix: str, queues: tuple[str, str], dag: Dag, args: argparse.Namespace
) -> dict[str, Any]:
    """Interleaved runs of every variant of one shape (load drifts; interleaving spreads it)."""
    latency_s = args.latency_ms / 1000
    width = min(len(dag.deps), 64)
    runs: dict[str, list[Any]] = {
        k: [] for k in ("par", "default", "seq", "bare", "bare_seq", "floor")
    }
    for _ in range(args.repeats):
        runs["par"].append(await run_task(stack, prefix, dag, max_parallel=width))
        runs["default"].append(await run_task(stack, prefix, dag, max_parallel=None))
        runs["bare"].append(await run_floor_task(stack, queues, dag.deps, args.latency_ms))
        runs["seq"].append(await run_task(stack, prefix, dag, max_parallel=1))
        runs["bare_seq"].append(
            await run_floor_task(stack, queues, sequential_deps(dag), args.latency_ms)
        )
        runs["floor"].append(await asyncio_floor(dag, latency_s, sequential=False))
    ideal = (dag.depth + 2) * latency_s
    makespan = median([r["makespan_s"] for r in runs["par"]])
    seq_makespan = median([r["makespan_s"] for r in runs["seq"]])
    default_makespan = median([r["makespan_s"] for r in runs["default"]])
    phase = median([r["dag_phase_s"] for r in runs["par"]])
    seq_phase = median([r["dag_phase_s"] for r in runs["seq"]])
    asyncio_s = median(runs["floor"])
    return {
        "shape": dag.name,
        "nodes": len(dag.deps),
        "edges": dag.edges,
        "depth": dag.depth,
        "deps": dag.deps,
        "max_parallel": width,
        "ideal_s": ideal,
        "asyncio_s": asyncio_s,
        "asyncio_sequential_s": (len(dag.deps) + 2) * latency_s,
        "bare_temporal_s": median(runs["bare"]),
        "bare_temporal_sequential_s": median(runs["bare_seq"]),
        "mahsm_s": makespan,
        "mahsm_runs_s": [r["makespan_s"] for r in runs["par"]],
        "mahsm_sequential_s": seq_makespan,
        "mahsm_default_max_parallel_s": default_makespan,
        "default_ratio_to_ideal": default_makespan / ideal,
        "dag_phase_s": phase,
        "dag_phase_sequential_s": seq_phase,
        "ratio_to_ideal": makespan / ideal,
        "bare_ratio_to_ideal": median(runs["bare"]) / ideal,
        "ratio_to_asyncio": makespan / asyncio_s,
        "overhead_per_hop_ms": (makespan - ideal) / (dag.depth + 2) * 1000,
        "speedup_vs_sequential": seq_makespan / makespan,
        "dag_phase_speedup": seq_phase / phase,
    }


async def main_async(args: argparse.Namespace) -> None:
    dags = [make_shape(name, args.seed) for name in args.shapes.split(",")]
    results: list[dict[str, Any]] = []
    load_before = load_average()
    async with bench_stack(args) as stack:
        scenario_file = write_scenario(
            stack.root / "dag-scenario.yaml", scenario(dags, args.latency_ms)
        )
        settings = engine_settings(stack, scenario_file)
        async with (
            running_workers(stack, settings),
            running_floor_workers(stack, settings) as queues,
        ):
            prefix = settings.queue_prefix
            # Warm-up, not counted: first-run imports, sandbox caches, connections.
            await run_task(stack, prefix, dags[0], max_parallel=64)
            await run_floor_task(stack, queues, dags[0].deps, args.latency_ms)
            for dag in dags:
                results.append(await measure(stack, prefix, queues, dag, args))
                print(f"{dag.name}: done", flush=True)
    print()
    print(f"DAG overhead, L = {args.latency_ms:g} ms, medians of {args.repeats} runs (seconds)")
    print_table(
        [
            "shape",
            "nodes",
            "depth",
            "ideal",
            "asyncio",
            "bare Temporal",
            "MAHSM",
            "MAHSM/ideal",
            "ovh/hop ms",
            "MAHSM default",
            "default/ideal",
            "MAHSM seq",
            "DAG phase",
            "DAG phase seq",
            "DAG speed-up",
        ],
        [
            [
                r["shape"],
                r["nodes"],
                r["depth"],
                r["ideal_s"],
                r["asyncio_s"],
                r["bare_temporal_s"],
                r["mahsm_s"],
                r["ratio_to_ideal"],
                r["overhead_per_hop_ms"],
                r["mahsm_default_max_parallel_s"],
                r["default_ratio_to_ideal"],
                r["mahsm_sequential_s"],
                r["dag_phase_s"],
                r["dag_phase_sequential_s"],
                r["dag_phase_speedup"],
            ]
            for r in results
        ],
    )
    path = write_results(
        "dag_overhead",
        {
            "latency_ms": args.latency_ms,
            "repeats": args.repeats,
            "seed": args.seed,
            "temporal_db": args.temporal_db,
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "shapes": results,
        },
        args.out,
    )
    print(f"\nwrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=200.0, help="scripted LLM latency L")
    parser.add_argument("--repeats", type=int, default=3, help="runs per shape and mode")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated shapes")
    parser.add_argument("--seed", type=int, default=7, help="seed of the random DAG")
    add_stack_arguments(parser)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
