"""Tracing overhead: tasks/s and worker CPU per task with tracing on vs off (issue 13).

Two worker processes (`python -m mahsm.workers`) on the same servers, one with tracing off (no
exporter variables) and one exporting every span over OTLP/HTTP to a sink in this process
(`OTEL_EXPORTER_OTLP_ENDPOINT`), each on its own queue prefix. Rounds alternate off and on in
this one bench process, so drifting load on the host hits both alike, and the order within a
pair alternates too (off then on, then on then off): a host that slows down or speeds up
steadily over the run favours neither. Each round starts N
tasks of 5 subtasks at once (the `bench.throughput` workload: a planner call, 5 agents with
one LLM step, an aggregation call; scripted model, zero latency) and waits for all of them.

Two figures per pair of rounds (off, then on, back to back):

- the throughput ratio on/off (tasks/s), which the host's load moves a lot;
- the CPU ratio: CPU seconds the worker process spent per task, on/off. Tracing's cost is
  CPU work in the worker (spans, attributes, redaction, encoding, export), and a worker's own
  CPU time is barely moved by other processes on the host: the clean measurement.

Reported: each ratio's median over the pairs, and its noise (the pairs' spread and a 95%
interval of the mean, t-distribution); the overhead is 1 - tasks/s ratio and CPU ratio - 1.

With `--down` a third worker exports to a collector that answers every request with 503 (an
outage): spans are retried for up to 5 s per batch on the export thread, then dropped.

With `--other DIR` a further traced worker runs the MAHSM source tree in DIR (an older commit:
`git archive <commit> | tar -x -C DIR`), so a change's effect on tracing's cost is measured
in the same rounds as the change itself, on the same host load.

With `--side-by-side` every worker runs at the same time under the same steady load (each
keeps tasks/2 in flight for `--window` seconds per round), so the host's drift hits them
alike and the per-task CPU ratio is precise (±2-3 %). Its tasks/s ratio is not tracing's cost
in tasks/s: the workers share one Temporal server and one Postgres, so a traced worker's extra
CPU slows the untraced one too.

The host's speed moves by ±20 % between rounds a few seconds apart (2 shared cores), more
than the 5 % the figure is held to: the default 10 pairs give the median a 95 % interval of
about ±10 %; fewer pairs measure the noise.

With `--sample RATIO` a further worker traces that share of the tasks (OpenTelemetry's head
sampler, `parentbased_traceidratio`): the cost of tracing some tasks whole and the rest not at
all.

Run: `python -m bench.tracing_overhead [--tasks 50] [--rounds 10] [--down] [--no-content]
[--other DIR] [--sample RATIO] [--side-by-side [--window 15]]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil

from bench.common import (
    add_stack_arguments,
    bench_stack,
    engine_settings,
    load_average,
    machine,
    median,
    print_table,
    start_process,
    stop,
    wait_for_file,
    worker_env,
    write_results,
    write_scenario,
)
from bench.throughput import SUBTASKS, plan
from mahsm.contracts.task import TaskOptions, TaskRequest, TaskStatus
from mahsm.tasks import start_task
from mahsm.tracing import SCHEDULE_DELAY_MS

SAMPLER_VARIABLES = ("OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG")


class Sink:
    """An OTLP/HTTP endpoint that accepts every export (and counts the bytes)."""

    def __init__(self, *, status: int = 200) -> None:
        self.requests = 0
        self.bytes = 0
        self.status = status
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                size = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(size)
                sink.requests += 1
                sink.bytes += size
                self.send_response(sink.status)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a worker process (and any children it waited for)."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system + times.children_user + times.children_system


async def round_of(
    stack: Any, prefix: str, n: int, pid: int | None = None, settle_s: float = 1.0
) -> tuple[float, float, float]:
    """(tasks/s, worker CPU ms per task, of which in the wait) of a round of `n` tasks.

    The CPU is read `settle_s` after the last task ended, so a traced worker's export of the
    round's spans (sent at most `SCHEDULE_DELAY_MS` after they end) is counted in it.
    """
    request = task_request()
    cpu_before = cpu_seconds(pid) if pid else 0.0
    start = time.perf_counter()
    handles = await asyncio.gather(
        *(start_task(stack.client, request, queue_prefix=prefix) for _ in range(n))
    )
    states = await asyncio.gather(*(h.result() for h in handles))
    elapsed = time.perf_counter() - start
    if any(s.status != TaskStatus.COMPLETED for s in states):
        raise RuntimeError("a task did not complete")
    cpu_done = cpu_seconds(pid) if pid else 0.0
    await asyncio.sleep(settle_s)  # the export thread sends this round's spans (CPU counted)
    cpu_after = cpu_seconds(pid) if pid else float("nan")
    per_task = 1000 / n
    return n / elapsed, (cpu_after - cpu_before) * per_task, (cpu_after - cpu_done) * per_task


def task_request() -> TaskRequest:
    """One task of the throughput workload (5 subtasks, all at once)."""
    return TaskRequest(
        description=f"Throughput task [bench] {uuid.uuid4().hex[:8]}",
        options=TaskOptions(max_parallel=SUBTASKS),
    )


async def steady_load(stack: Any, prefix: str, in_flight: int, window_s: float) -> tuple[int, int]:
    """Keep `in_flight` tasks running on `prefix` for `window_s`: (tasks ended within it, started).

    Each lane starts its next task as soon as its last one ended; the task a lane has in
    flight when the window closes still runs to its end (and is not counted).
    """
    until = time.perf_counter() + window_s
    completed = started = 0

    async def lane() -> None:
        nonlocal completed, started
        while time.perf_counter() < until:
            started += 1
            handle = await start_task(stack.client, task_request(), queue_prefix=prefix)
            if (await handle.result()).status != TaskStatus.COMPLETED:
                raise RuntimeError("a task did not complete")
            if time.perf_counter() <= until:
                completed += 1

    await asyncio.gather(*(lane() for _ in range(in_flight)))
    return completed, started


async def side_by_side_round(
    stack: Any, workers: dict[str, tuple[Any, str]], args: argparse.Namespace, settle_s: float
) -> dict[str, tuple[float, float]]:
    """Every worker under the same steady load at the same time: (tasks/s, CPU ms per task).

    The workers share the host's cores, servers and moments of noise, so the ratio between
    them is free of the drift that separates two rounds run one after the other.
    """
    cpu_before = {mode: cpu_seconds(process.pid) for mode, (process, _) in workers.items()}
    counts = await asyncio.gather(
        *(
            steady_load(stack, prefix, args.tasks // 2, args.window)
            for _, prefix in workers.values()
        )
    )
    await asyncio.sleep(settle_s)  # the traced workers export the round's last spans
    found = {}
    for (mode, (process, _)), (completed, started) in zip(workers.items(), counts, strict=True):
        cpu_ms = (cpu_seconds(process.pid) - cpu_before[mode]) * 1000
        found[mode] = (completed / args.window, cpu_ms / started)
    return found


def worker_argv(mode: str, args: argparse.Namespace) -> list[str]:
    """`python -m mahsm.workers`; for `other`, with that source tree first on the path."""
    if mode != "other":
        return [sys.executable, "-m", "mahsm.workers"]
    run = (
        f"import runpy, sys; sys.path.insert(0, {str(args.other.resolve())!r});"
        " runpy.run_module('mahsm.workers', run_name='__main__', alter_sys=True)"
    )
    return [sys.executable, "-c", run]


def per_pair(measured: dict[str, list[float]], mode: str) -> list[float]:
    """`mode`'s figure over the untraced worker's, round by round."""
    return [b / a for a, b in zip(measured["off"], measured[mode], strict=True)]


def spread(ratios: list[float]) -> str:
    """Median, range and a 95% interval of the mean of per-pair ratios."""
    mean = statistics.fmean(ratios)
    if len(ratios) > 1:
        # t quantiles for 95%, two-sided; beyond 10 pairs 2.0 is close enough.
        t = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57, 7: 2.45, 8: 2.36, 9: 2.31, 10: 2.26}
        half = t.get(len(ratios), 2.0) * statistics.stdev(ratios) / len(ratios) ** 0.5
    else:
        half = float("nan")
    return (
        f"median {median(ratios):.3f}, range {min(ratios):.3f}-{max(ratios):.3f},"
        f" mean {mean:.3f} ± {half:.3f} (95%)"
    )


async def main_async(args: argparse.Namespace) -> None:
    sink, down = Sink(), Sink(status=503)  # `down`: a collector in an outage
    load_before = load_average()
    modes = [
        "off",
        "on",
        *(["down"] if args.down else []),
        *(["other"] if args.other else []),
        *(["sampled"] if args.sample is not None else []),
    ]
    results: dict[str, list[float]] = {mode: [] for mode in modes}
    cpu: dict[str, list[float]] = {mode: [] for mode in modes}
    waiting: dict[str, list[float]] = {mode: [] for mode in modes}  # CPU after the tasks ended
    async with bench_stack(args) as stack:
        scenario = write_scenario(
            stack.root / "tracing.yaml",
            {
                "latency_ms": 0,
                "rules": [
                    {
                        "purpose": "plan",
                        "match": r"\[bench\]",
                        "respond": {"plan": plan().model_dump(mode="json")},
                    }
                ],
            },
        )
        workers = {}
        for mode in modes:
            settings = engine_settings(stack, scenario)
            env = {**worker_env(stack, settings), "MAHSM_READY_FILE": str(stack.root / mode)}
            for name in (*SAMPLER_VARIABLES, "OTEL_EXPORTER_OTLP_ENDPOINT", "LANGFUSE_PUBLIC_KEY"):
                env.pop(name, None)
            if mode != "off":
                env["OTEL_EXPORTER_OTLP_ENDPOINT"] = (down if mode == "down" else sink).url
                if args.no_content:
                    env["MAHSM_TRACE_CONTENT"] = "false"
            if mode == "sampled":  # OpenTelemetry's own head sampler, decided per task
                env["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio"
                env["OTEL_TRACES_SAMPLER_ARG"] = str(args.sample)
            process = await start_process(worker_argv(mode, args), env, stack.root / f"{mode}.log")
            workers[mode] = (process, settings.queue_prefix)
        try:
            for mode, (process, _) in workers.items():
                await wait_for_file(stack.root / mode, timeout_s=90, process=process)
            for _, prefix in workers.values():
                await round_of(stack, prefix, 5)  # warm-up
            # Every worker's CPU is read after the same wait (an idle worker still spends
            # some CPU: pollers, heartbeats), long enough for the traced one's last batch.
            settle = SCHEDULE_DELAY_MS / 1000 + 1.0
            order = list(workers.items())
            for pair in range(args.rounds):
                if args.side_by_side:
                    measured = await side_by_side_round(stack, workers, args, settle)
                    for mode, (rate, cpu_ms) in measured.items():
                        results[mode].append(rate)
                        cpu[mode].append(cpu_ms)
                else:
                    for mode, (process, prefix) in order if pair % 2 == 0 else order[::-1]:
                        rate, cpu_ms, waiting_ms = await round_of(
                            stack, prefix, args.tasks, process.pid, settle
                        )
                        waiting[mode].append(waiting_ms)
                        results[mode].append(rate)
                        cpu[mode].append(cpu_ms)
        finally:
            for process, _ in workers.values():
                await stop(process)
    off, on = median(results["off"]), median(results["on"])
    # A pair's two rounds run back to back: the ratio within a pair cancels most of the drift
    # of the host's load; its median is the figure reported.
    ratios = per_pair(results, "on")
    overhead = (1 - median(ratios)) * 100
    cpu_ratios = per_pair(cpu, "on")
    cpu_overhead = (median(cpu_ratios) - 1) * 100
    labels = {
        "off": "off",
        "on": "on (OTLP/HTTP)",
        "down": "on, collector answering 503",
        "other": f"on, code of {args.other}",
        "sampled": f"on, {args.sample} of the tasks traced",
    }
    print_table(
        ["tracing", "tasks/s (median)", "rounds", "worker CPU ms/task (median)", "rounds"],
        [
            [
                labels[m],
                f"{median(v):.2f}",
                " ".join(f"{x:.2f}" for x in v),
                f"{median(cpu[m]):.1f}",
                " ".join(f"{x:.1f}" for x in cpu[m]),
            ]
            for m, v in results.items()
        ],
    )
    print(f"tasks/s on/off per pair: {spread(ratios)}")  # noqa: T201
    print(f"worker CPU per task on/off per pair: {spread(cpu_ratios)}")  # noqa: T201
    if not args.side_by_side:  # measured only between rounds run one after the other
        print(  # noqa: T201
            "of which in the wait after each round (ms/task, median): "
            + ", ".join(f"{m} {median(v):.1f}" for m, v in waiting.items())
        )
    print(  # noqa: T201
        f"CPU overhead: {cpu_overhead:.1f}% per task (median of per-pair ratios"
        f" {' '.join(f'{r:.3f}' for r in cpu_ratios)})"
    )
    if args.other:
        other = per_pair(cpu, "other")
        print(f"worker CPU per task other/off per pair: {spread(other)}")  # noqa: T201
    if args.sample is not None:
        sampled = per_pair(cpu, "sampled")
        sampled_rate = per_pair(results, "sampled")
        print(f"worker CPU per task sampled/off per pair: {spread(sampled)}")  # noqa: T201
        print(f"tasks/s sampled/off per pair: {spread(sampled_rate)}")  # noqa: T201
    if args.down:
        ratios_down = per_pair(results, "down")
        print(  # noqa: T201
            f"collector down: {(1 - median(ratios_down)) * 100:.1f}% of tasks/s (per-pair"
            f" ratios {' '.join(f'{r:.2f}' for r in ratios_down)}); {down.requests} rejected"
        )
    print(  # noqa: T201
        f"overhead: {overhead:.1f}% of tasks/s (median of per-pair ratios"
        f" {' '.join(f'{r:.2f}' for r in ratios)}); spans exported in {sink.requests} requests"
    )
    write_results(
        "tracing_overhead",
        {
            "machine": machine(),
            "load_before": load_before,
            "load_after": load_average(),
            "tasks_per_round": args.tasks,
            "tasks_per_s": results,
            "median_off": off,
            "median_on": on,
            "on_off_ratios": ratios,
            "overhead_percent": overhead,
            "worker_cpu_ms_per_task": cpu,
            "worker_cpu_ms_per_task_in_wait": waiting,
            "cpu_on_off_ratios": cpu_ratios,
            "cpu_overhead_percent": cpu_overhead,
            "trace_content": not args.no_content,
            "sample_ratio": args.sample,
            "otlp_requests": sink.requests,
            "otlp_bytes": sink.bytes,
        },
        args.out,
    )


def ratio(text: str) -> float:
    """A share of the tasks, 0 to 1 (argparse type)."""
    value = float(text)
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{text}: a share of the tasks from 0 to 1, e.g. 0.1")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50, help="concurrent tasks per round")
    parser.add_argument("--rounds", type=int, default=10, help="off/on round pairs")
    parser.add_argument(
        "--down", action="store_true", help="also a worker whose collector answers 503"
    )
    parser.add_argument(
        "--no-content",
        action="store_true",
        help="traced workers record no prompts or completions (MAHSM_TRACE_CONTENT=false)",
    )
    parser.add_argument(
        "--other",
        type=Path,
        help="also a traced worker running the MAHSM source tree in this folder (e.g. `git"
        " archive main | tar -x -C DIR`): before/after a change, in the same rounds",
    )
    parser.add_argument(
        "--sample",
        type=ratio,
        metavar="RATIO",
        help="also a traced worker that traces this share of the tasks (OTEL_TRACES_SAMPLER="
        "parentbased_traceidratio, OTEL_TRACES_SAMPLER_ARG=RATIO)",
    )
    parser.add_argument(
        "--side-by-side",
        action="store_true",
        help="run every worker at the same time under a steady load (tasks/2 in flight each)"
        " for --window seconds per round, instead of one after the other",
    )
    parser.add_argument(
        "--window", type=float, default=15.0, help="seconds of each --side-by-side round"
    )
    add_stack_arguments(parser)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
