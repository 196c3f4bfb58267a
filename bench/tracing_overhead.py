"""Tracing overhead: tasks/s of one worker process with tracing on vs off (issue 13).

Two worker processes (`python -m mahsm.workers`) on the same servers, one with tracing off (no
exporter variables) and one exporting every span over OTLP/HTTP to a sink in this process
(`OTEL_EXPORTER_OTLP_ENDPOINT`), each on its own queue prefix. Rounds alternate off and on so
that drifting load on the host hits both alike. Each round starts N tasks of 5 subtasks at once
(the `bench.throughput` workload: a planner call, 5 agents with one LLM step, an aggregation
call; scripted model, zero latency) and waits for all of them.

With `--down` a third worker exports to a collector that answers every request with 503 (an
outage): spans are retried for up to 5 s per batch on the export thread, then dropped.

Run: `python -m bench.tracing_overhead [--tasks 50] [--rounds 3] [--down]`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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


async def round_of(stack: Any, prefix: str, n: int) -> float:
    request = TaskRequest(
        description=f"Throughput task [bench] {uuid.uuid4().hex[:8]}",
        options=TaskOptions(max_parallel=SUBTASKS),
    )
    start = time.perf_counter()
    handles = await asyncio.gather(
        *(start_task(stack.client, request, queue_prefix=prefix) for _ in range(n))
    )
    states = await asyncio.gather(*(h.result() for h in handles))
    elapsed = time.perf_counter() - start
    if any(s.status != TaskStatus.COMPLETED for s in states):
        raise RuntimeError("a task did not complete")
    return n / elapsed


async def main_async(args: argparse.Namespace) -> None:
    sink, down = Sink(), Sink(status=503)  # `down`: a collector in an outage
    load_before = load_average()
    modes = ["off", "on", *(["down"] if args.down else [])]
    results: dict[str, list[float]] = {mode: [] for mode in modes}
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
            for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "LANGFUSE_PUBLIC_KEY"):
                env.pop(name, None)
            if mode != "off":
                env["OTEL_EXPORTER_OTLP_ENDPOINT"] = (sink if mode == "on" else down).url
            process = await start_process(
                [sys.executable, "-m", "mahsm.workers"], env, stack.root / f"worker-{mode}.log"
            )
            workers[mode] = (process, settings.queue_prefix)
        try:
            for mode, (process, _) in workers.items():
                await wait_for_file(stack.root / mode, timeout_s=90, process=process)
            for _, prefix in workers.values():
                await round_of(stack, prefix, 5)  # warm-up
            for _ in range(args.rounds):
                for mode, (_, prefix) in workers.items():
                    results[mode].append(await round_of(stack, prefix, args.tasks))
        finally:
            for process, _ in workers.values():
                await stop(process)
    off, on = median(results["off"]), median(results["on"])
    # Each on round runs right after its off round: the ratio within a pair cancels most of
    # the drift of the host's load; its median is the figure reported.
    ratios = [b / a for a, b in zip(results["off"], results["on"], strict=True)]
    overhead = (1 - median(ratios)) * 100
    labels = {"off": "off", "on": "on (OTLP/HTTP)", "down": "on, collector answering 503"}
    print_table(
        ["tracing", "tasks/s (median)", "rounds"],
        [
            [labels[m], f"{median(v):.2f}", " ".join(f"{x:.2f}" for x in v)]
            for m, v in results.items()
        ],
    )
    if args.down:
        ratios_down = [b / a for a, b in zip(results["off"], results["down"], strict=True)]
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
            "otlp_requests": sink.requests,
            "otlp_bytes": sink.bytes,
        },
        args.out,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50, help="concurrent tasks per round")
    parser.add_argument("--rounds", type=int, default=3, help="off/on round pairs")
    parser.add_argument(
        "--down", action="store_true", help="also a worker whose collector answers 503"
    )
    add_stack_arguments(parser)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
