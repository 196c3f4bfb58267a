"""Pipeline engine overhead per step: a chain of zero-latency `llm` steps vs bare Temporal.

MAHSM: a pipeline of N `llm` steps in a chain (each prompt names the previous step's output),
run as a task by `TaskWorkflow` on in-process workers; the scripted provider answers at once
(latency 0). Floor: the same chain as N bare Temporal activities with empty bodies in one
workflow (`bench.floor_workflows.FloorTask`), on the same server, workers tuned alike.

Runs alternate between the two (load drifts; alternating spreads it). Per run: the client's
wall time from start to result. Reported: medians and p90s, their ratio, and the engine's
overhead per step, (MAHSM - floor) / N. A second phase runs `--concurrent` runs of each at
once, `--batches` times alternating, and reports the median wall time of a batch.

    python -m bench.pipeline_overhead               # N = 10, 20 runs each
    python -m bench.pipeline_overhead --steps 10 --runs 40 --concurrent 20
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

from bench.common import (
    Stack,
    add_stack_arguments,
    bench_stack,
    engine_settings,
    load_average,
    median,
    percentile,
    print_table,
    running_floor_workers,
    running_workers,
    write_results,
    write_scenario,
)
from bench.floor_workflows import FloorTask, FloorTaskInput
from mahsm.contracts.pipeline import Pipeline
from mahsm.contracts.task import TaskRequest, TaskState, TaskStatus
from mahsm.tasks import start_task

SCENARIO: dict[str, Any] = {
    "latency_ms": 0,
    "jitter_ms": 0,
    "rules": [{"purpose": "step", "respond": {"content": "ok"}}],
}


def chain(steps: int) -> Pipeline:
    """`steps` llm steps, each prompt naming the previous step's output."""
    members: list[dict[str, Any]] = [{"name": "s0", "kind": "llm", "prompt": "start {seed}"}]
    members += [
        {"name": f"s{i}", "kind": "llm", "prompt": f"step {i} after {{s{i - 1}}}"}
        for i in range(1, steps)
    ]
    return Pipeline.model_validate(
        {
            "name": "overhead-chain",
            "inputs": {"seed": "int"},
            "steps": members,
            "outputs": {"last": f"{{s{steps - 1}}}"},
        }
    )


async def run_pipeline(stack: Stack, prefix: str, pipeline: Pipeline) -> float:
    """One pipeline run as a task; returns the client-observed wall time (s)."""
    request = TaskRequest(
        description=f"Benchmark pipeline {uuid.uuid4().hex[:8]}",
        pipeline=pipeline,
        inputs={"seed": 1},
    )
    start = time.perf_counter()
    handle = await start_task(stack.client, request, queue_prefix=prefix)
    state: TaskState = await handle.result()
    elapsed = time.perf_counter() - start
    if state.status != TaskStatus.COMPLETED or state.outputs != {"last": "ok"}:
        raise RuntimeError(f"pipeline {state.task_id} ended {state.status}: {state.error}")
    return elapsed


async def run_floor(stack: Stack, queue: str, steps: int) -> float:
    """The same chain as `steps` empty activities in one bare workflow; wall time (s)."""
    start = time.perf_counter()
    await stack.client.execute_workflow(
        FloorTask.run,
        FloorTaskInput(before=[0.0] * steps),
        id=f"floor-{uuid.uuid4()}",
        task_queue=queue,
    )
    return time.perf_counter() - start


def summary(pipeline_s: list[float], floor_s: list[float], steps: int) -> dict[str, Any]:
    """Medians, p90s, ratio and overhead per step of the sequential runs."""
    mahsm, floor = median(pipeline_s), median(floor_s)
    return {
        "mahsm_median_s": mahsm,
        "mahsm_p90_s": percentile(pipeline_s, 90),
        "floor_median_s": floor,
        "floor_p90_s": percentile(floor_s, 90),
        "ratio": mahsm / floor,
        "mahsm_per_step_ms": mahsm / steps * 1000,
        "floor_per_step_ms": floor / steps * 1000,
        "overhead_per_step_ms": (mahsm - floor) / steps * 1000,
    }


async def main_async(args: argparse.Namespace) -> None:
    load_before = load_average()
    pipeline = chain(args.steps)
    pipeline_s: list[float] = []
    floor_s: list[float] = []
    async with bench_stack(args) as stack:
        scenario = write_scenario(stack.root / "scenario.yaml", SCENARIO)
        settings = engine_settings(stack, scenario)
        async with (
            running_workers(stack, settings),
            running_floor_workers(stack, settings) as queues,
        ):
            prefix = settings.queue_prefix
            for _ in range(2):  # warm-up, not counted: imports, sandbox caches, connections
                await run_pipeline(stack, prefix, pipeline)
                await run_floor(stack, queues[0], args.steps)
            for _ in range(args.runs):
                pipeline_s.append(await run_pipeline(stack, prefix, pipeline))
                floor_s.append(await run_floor(stack, queues[0], args.steps))
            batches_pipeline: list[float] = []
            batches_floor: list[float] = []
            for _ in range(args.batches):  # alternating, like the sequential runs
                start = time.perf_counter()
                await asyncio.gather(
                    *(run_pipeline(stack, prefix, pipeline) for _ in range(args.concurrent))
                )
                batches_pipeline.append(time.perf_counter() - start)
                start = time.perf_counter()
                await asyncio.gather(
                    *(run_floor(stack, queues[0], args.steps) for _ in range(args.concurrent))
                )
                batches_floor.append(time.perf_counter() - start)
            batch_pipeline_s, batch_floor_s = median(batches_pipeline), median(batches_floor)
    figures = summary(pipeline_s, floor_s, args.steps)
    figures |= {
        "concurrent": args.concurrent,
        "batches": args.batches,
        "batch_mahsm_s": batch_pipeline_s,
        "batch_floor_s": batch_floor_s,
        "batch_ratio": batch_pipeline_s / batch_floor_s,
    }
    print()
    print(f"Pipeline overhead: {args.steps} zero-latency llm steps, {args.runs} runs each")
    print_table(
        ["run", "median s", "p90 s", "per step ms"],
        [
            ["MAHSM pipeline", figures["mahsm_median_s"], figures["mahsm_p90_s"],
             figures["mahsm_per_step_ms"]],
            ["bare Temporal chain", figures["floor_median_s"], figures["floor_p90_s"],
             figures["floor_per_step_ms"]],
        ],
    )  # fmt: skip
    print(
        f"\nratio MAHSM/bare {figures['ratio']:.2f}; engine overhead per step"
        f" {figures['overhead_per_step_ms']:.1f} ms"
    )
    print(
        f"{args.concurrent} concurrent runs (median of {args.batches} batches):"
        f" MAHSM {batch_pipeline_s:.2f} s, bare"
        f" {batch_floor_s:.2f} s (ratio {figures['batch_ratio']:.2f})"
    )
    path = write_results(
        "pipeline_overhead",
        {
            "steps": args.steps,
            "runs": args.runs,
            "temporal_db": args.temporal_db,
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "mahsm_runs_s": pipeline_s,
            "floor_runs_s": floor_s,
            **figures,
        },
        args.out,
    )
    print(f"\nwrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="llm steps in the chain")
    parser.add_argument("--runs", type=int, default=20, help="sequential runs of each")
    parser.add_argument("--concurrent", type=int, default=10, help="runs of each at once")
    parser.add_argument("--batches", type=int, default=3, help="concurrent batches of each")
    add_stack_arguments(parser)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
