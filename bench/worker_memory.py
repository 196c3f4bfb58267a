"""Worker memory: peak RSS of one worker process running 200 concurrent tasks.

The worker runs as `python -m mahsm.workers` (what `mahsm worker` runs); its RSS is sampled with
psutil every 50 ms from before the first task until the last one ends. All tasks are
started at once; each has `--subtasks` independent subtasks (default 5, the throughput
shape) whose LLM step takes `--latency-ms` (default 500 ms), so every task holds a
`TaskWorkflow` and its `AgentWorkflow`s in the worker's cache at the same time.

Run: `python -m bench.worker_memory [--tasks 200] [--subtasks 5]`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid

import psutil

from bench.common import (
    add_stack_arguments,
    bench_stack,
    engine_settings,
    load_average,
    print_table,
    start_process,
    stop,
    wait_for_file,
    worker_env,
    write_results,
    write_scenario,
)
from mahsm.contracts.task import Capability, Plan, Subtask, TaskOptions, TaskRequest, TaskStatus
from mahsm.tasks import start_task

MIB = 2**20


class RssSampler:
    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        self.process = psutil.Process(pid)
        self.interval_s = interval_s
        self.samples: list[tuple[float, int]] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        start = time.perf_counter()
        while True:
            try:
                rss = self.process.memory_info().rss
            except psutil.Error:
                return
            self.samples.append((time.perf_counter() - start, rss))
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    @property
    def peak_mib(self) -> float:
        return max(rss for _, rss in self.samples) / MIB


async def main_async(args: argparse.Namespace) -> None:
    load_before = load_average()
    plan = Plan(
        subtasks=[
            Subtask(
                id=f"part{i}",
                description=f"memory part {i}",
                required_capabilities=[Capability.DATA_ANALYSIS],
            )
            for i in range(args.subtasks)
        ]
    )
    async with bench_stack(args) as stack:
        scenario_file = write_scenario(
            stack.root / "memory.yaml",
            {
                "latency_ms": args.latency_ms,
                "rules": [
                    {
                        "purpose": "plan",
                        "match": r"\[memory\]",
                        "respond": {"plan": plan.model_dump(mode="json")},
                    }
                ],
            },
        )
        settings = engine_settings(stack, scenario_file)
        ready = stack.root / "worker.ready"
        worker = await start_process(
            [sys.executable, "-m", "mahsm.workers"],
            {**worker_env(stack, settings), "MAHSM_READY_FILE": str(ready)},
            stack.root / "worker.log",
        )
        try:
            await wait_for_file(ready, timeout_s=60, process=worker)
            assert worker.pid is not None
            sampler = RssSampler(worker.pid)
            sampler.start()
            await asyncio.sleep(1)
            idle_mib = sampler.samples[-1][1] / MIB
            started = time.perf_counter()
            request = TaskRequest(
                description=f"Memory benchmark task [memory] {uuid.uuid4().hex[:8]}",
                options=TaskOptions(max_parallel=args.subtasks),
            )
            handles = await asyncio.gather(
                *(
                    start_task(stack.client, request, queue_prefix=settings.queue_prefix)
                    for _ in range(args.tasks)
                )
            )
            states = await asyncio.gather(*(h.result() for h in handles))
            elapsed = time.perf_counter() - started
            await asyncio.sleep(1)
            await sampler.stop()
            end_mib = sampler.samples[-1][1] / MIB
        except BaseException:
            sys.stderr.write((stack.root / "worker.log").read_text()[-3000:])
            raise
        finally:
            await stop(worker)
    completed = sum(1 for s in states if s.status == TaskStatus.COMPLETED)
    peak = sampler.peak_mib
    print()
    print(f"Worker memory, {args.tasks} concurrent tasks x {args.subtasks} subtasks")
    print_table(
        [
            "tasks",
            "completed",
            "idle RSS MiB",
            "peak RSS MiB",
            "after RSS MiB",
            "per task KiB",
            "run s",
        ],
        [
            [
                args.tasks,
                completed,
                idle_mib,
                peak,
                end_mib,
                (peak - idle_mib) * 1024 / args.tasks,
                elapsed,
            ]
        ],
    )
    path = write_results(
        "worker_memory",
        {
            "tasks": args.tasks,
            "subtasks": args.subtasks,
            "llm_latency_ms": args.latency_ms,
            "completed": completed,
            "idle_rss_mib": idle_mib,
            "peak_rss_mib": peak,
            "after_rss_mib": end_mib,
            "run_s": elapsed,
            "samples": len(sampler.samples),
            "rss_mib_timeline": [
                [round(t, 2), round(rss / MIB, 1)] for t, rss in sampler.samples[::20]
            ],
            "load_average_before": load_before,
            "load_average_after": load_average(),
        },
        args.out,
    )
    print(f"\nwrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200, help="concurrent tasks")
    parser.add_argument("--subtasks", type=int, default=5, help="independent subtasks per task")
    parser.add_argument("--latency-ms", type=float, default=500.0, help="scripted LLM latency")
    add_stack_arguments(parser)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
