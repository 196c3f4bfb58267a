"""Experiment layer overhead: 5 configs x 50 rows on a zero-latency model.

MAHSM: one `multi_branch` experiment (`ExperimentWorkflow`) over a one-step pipeline, 5
configs (temperatures) on a 50-row dataset, each branch a child `TaskWorkflow`, scored with
`exact_match`, at most `--concurrency` branches at once; once with MLflow logging off and
once on (a SQLite store in the run's directory, created before the clock starts). Floor: the
same 250 tasks started directly (no experiment layer) with the same concurrency bound.
In-process workers on an embedded Temporal dev server and Postgres; one run of each.

Reported: wall times, the ratio experiment/floor, and the overhead per branch,
(experiment - floor) / 250.

    python -m bench.experiment_overhead
    python -m bench.experiment_overhead --configs 5 --rows 50 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

from bench.common import (
    add_stack_arguments,
    bench_stack,
    engine_settings,
    load_average,
    print_table,
    running_workers,
    write_results,
    write_scenario,
)
from mahsm.contracts.task import TaskState, TaskStatus
from mahsm.experiments.apply import branch_request
from mahsm.experiments.mlflow_sync import log_experiment
from mahsm.experiments.models import ExperimentRequest, ExperimentState
from mahsm.queues import tasks_queue
from mahsm.tasks import start_task
from mahsm.workflows.experiment_workflow import ExperimentWorkflow

SCENARIO: dict[str, Any] = {
    "latency_ms": 0,
    "jitter_ms": 0,
    "rules": [{"purpose": "step", "respond": {"content": "ok"}}],
}


def experiment(configs: int, rows: int, concurrency: int, *, mlflow: bool) -> ExperimentRequest:
    """The benchmark experiment: `configs` temperatures x `rows` rows of a one-step pipeline."""
    return ExperimentRequest.model_validate(
        {
            "name": "bench",
            "target": {
                "pipeline": {
                    "name": "bench",
                    "inputs": {"n": "int"},
                    "steps": [{"name": "a", "kind": "llm", "prompt": "Row {n}"}],
                    "outputs": {"a": "{a}"},
                }
            },
            "configs": [{"temperature": round(0.1 * i, 1)} for i in range(configs)],
            "dataset": [{"inputs": {"n": n}, "expected": "ok"} for n in range(rows)],
            "metrics": [{"kind": "exact_match"}],
            "max_concurrency": concurrency,
            "mlflow": mlflow,
        }
    )


async def main_async(args: argparse.Namespace) -> None:
    load_before = load_average()
    async with bench_stack(args) as stack:
        scenario = write_scenario(stack.root / "scenario.yaml", SCENARIO)
        uri = f"sqlite:///{stack.root / 'mlflow.db'}"
        settings = engine_settings(stack, scenario, mlflow_tracking_uri=uri)
        prefix = settings.queue_prefix
        # Create the MLflow store (schema migrations, ~4 s) outside the timed runs.
        warm = ExperimentState.model_validate(
            {"experiment_id": "experiment-warm", "name": "warm", "strategy": "multi_branch",
             "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}
        )  # fmt: skip
        await asyncio.to_thread(log_experiment, warm, uri)
        async with running_workers(stack, settings):

            async def run_experiment(request: ExperimentRequest) -> tuple[float, ExperimentState]:
                start = time.perf_counter()
                state: ExperimentState = await stack.client.execute_workflow(
                    ExperimentWorkflow.run,
                    request,
                    id=f"experiment-{uuid.uuid4()}",
                    task_queue=tasks_queue(prefix),
                )
                elapsed = time.perf_counter() - start
                failed = [b for b in state.branches if b.status != "success"]
                planned = len(request.configs) * len(request.dataset or [])
                if failed or len(state.branches) != planned:
                    raise RuntimeError(f"{len(failed)} branches did not succeed")
                return elapsed, state

            async def run_floor(request: ExperimentRequest) -> float:
                slots = asyncio.Semaphore(args.concurrency)
                rows = request.dataset or []

                async def one(config_index: int, row: int) -> None:
                    async with slots:
                        task = branch_request(
                            request, request.configs[config_index], rows[row].inputs
                        )
                        handle = await start_task(stack.client, task, queue_prefix=prefix)
                        state: TaskState = await handle.result()
                        if state.status != TaskStatus.COMPLETED:
                            raise RuntimeError(f"task {state.task_id} ended {state.status}")

                start = time.perf_counter()
                await asyncio.gather(
                    *(one(c, r) for r in range(len(rows)) for c in range(len(request.configs)))
                )
                return time.perf_counter() - start

            small = experiment(2, 2, args.concurrency, mlflow=False)
            await run_experiment(small)  # warm-up: imports, sandbox caches, connections
            await run_floor(small)
            off = experiment(args.configs, args.rows, args.concurrency, mlflow=False)
            on = experiment(args.configs, args.rows, args.concurrency, mlflow=True)
            floor_s = await run_floor(off)
            off_s, _ = await run_experiment(off)
            on_s, on_state = await run_experiment(on)
    branches = args.configs * args.rows
    figures = {
        "configs": args.configs,
        "rows": args.rows,
        "branches": branches,
        "concurrency": args.concurrency,
        "floor_s": floor_s,
        "experiment_s": off_s,
        "experiment_mlflow_s": on_s,
        "ratio": off_s / floor_s,
        "ratio_mlflow": on_s / floor_s,
        "overhead_per_branch_ms": (off_s - floor_s) / branches * 1000,
        "overhead_per_branch_mlflow_ms": (on_s - floor_s) / branches * 1000,
        "mlflow_runs": on_state.mlflow.runs,
    }
    print()
    print(
        f"Experiment overhead: {args.configs} configs x {args.rows} rows, zero-latency model,"
        f" {args.concurrency} at once, one run each"
    )
    print_table(
        ["run", "wall s", "per branch ms", "ratio"],
        [
            [f"{branches} tasks, no experiment layer", floor_s, floor_s / branches * 1000, 1.0],
            ["experiment, MLflow off", off_s, off_s / branches * 1000, figures["ratio"]],
            ["experiment, MLflow on", on_s, on_s / branches * 1000, figures["ratio_mlflow"]],
        ],
    )
    print(
        f"\noverhead per branch: {figures['overhead_per_branch_ms']:.1f} ms (MLflow off),"
        f" {figures['overhead_per_branch_mlflow_ms']:.1f} ms (MLflow on,"
        f" {figures['mlflow_runs']} runs logged)"
    )
    path = write_results(
        "experiment_overhead",
        {**figures, "load_average_before": load_before, "load_average_after": load_average()},
        args.out,
    )
    print(f"\nwrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=5)
    parser.add_argument("--rows", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=16, help="branches at once")
    add_stack_arguments(parser)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
