"""SSE fan-out: `GET /tasks/{id}` latency of running tasks with 200 event streams open.

Issue 9 item 5: 200 streams of one user, each polling the workflow's `state` query every
250 ms, took `GET /tasks/{id}` of running tasks from 14 ms median to 2 s. Streams now read the
task event log, pushed by Postgres LISTEN/NOTIFY; this measures what they cost the reads.

Processes as deployed: the API (`python -m mahsm.api`), one worker (`python -m mahsm.workers`), this
load generator. `--held` tasks are submitted with `require_approval`, so their workflows run and
wait (the GET targets: read from Postgres plus the live `state` query). While measuring, a task is
started every `--churn-s` and runs through plan, agents and aggregation with the scripted model's
`--latency-ms`, so events are written and pushed. Two phases, same load:

- `floor`: 0 streams; `--clients` clients GET random held tasks, paced at `--rate`/s.
- `streams`: `--streams` streams open on the held tasks (one user), plus one on each task
  started meanwhile (it receives that task's events), then the same GETs.

Target: GET p95 with 200 streams < 50 ms, printed against the floor of the same run.

Run: `python -m bench.sse_fanout [--streams 200] [--held 20] [--rate 20] [--churn-s 2]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.api_latency import wait_healthy, wait_status
from bench.common import (
    CpuMeter,
    add_stack_arguments,
    bench_stack,
    engine_settings,
    load_average,
    percentile,
    print_table,
    start_process,
    stop,
    wait_for_file,
    worker_env,
    write_results,
    write_scenario,
)
from mahsm.devstack.process import free_port

TARGET_P95_MS = 50.0
HELD_BODY: dict[str, Any] = {
    "description": "Benchmark task: wait for approval [sse]",
    "options": {"require_approval": True},
}
ACTIVE_BODY: dict[str, Any] = {"description": "Benchmark task: summarise the numbers [sse]"}


class Streams:
    """Open SSE streams, read continuously; counts what they received."""

    def __init__(self, base_url: str) -> None:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
        self.http = httpx.AsyncClient(base_url=base_url, limits=limits, timeout=None)
        self.tasks: list[asyncio.Task[None]] = []
        self.open = 0
        self.events = 0
        self.refused: dict[int, int] = {}

    async def _follow(self, task_id: str, opened: asyncio.Event) -> None:
        async with self.http.stream("GET", f"/tasks/{task_id}/events") as response:
            if response.status_code != 200:
                self.refused[response.status_code] = self.refused.get(response.status_code, 0) + 1
                opened.set()
                return
            self.open += 1
            opened.set()
            try:
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        self.events += 1
            finally:
                self.open -= 1

    async def start(self, task_ids: list[str], count: int) -> None:
        """Open `count` streams over `task_ids` (round-robin); returns once all answered."""
        waits = []
        for i in range(count):
            opened = asyncio.Event()
            self.tasks.append(
                asyncio.create_task(self._follow(task_ids[i % len(task_ids)], opened))
            )
            waits.append(opened.wait())
        await asyncio.wait_for(asyncio.gather(*waits), timeout=120)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.http.aclose()


async def measure_gets(
    clients: list[httpx.AsyncClient], task_ids: list[str], args: argparse.Namespace, seed: int
) -> tuple[list[float], dict[int, int]]:
    """`args.gets` GETs of random tasks, paced at `args.rate` per second over all clients.

    Paced, not back to back: the figure is the latency a reader sees, not the throughput of
    a 2-core host (back-to-back clients would queue on the CPU whatever the streams do).
    """
    samples: list[float] = []
    errors: dict[int, int] = {}
    n = len(clients)
    t0 = time.perf_counter()

    async def one_client(index: int, http: httpx.AsyncClient) -> None:
        rng = random.Random(seed + index)
        for k in range(index, args.gets, n):
            delay = t0 + k / args.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            started = time.perf_counter()
            response = await http.get(f"/tasks/{rng.choice(task_ids)}")
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code == 200:
                samples.append(elapsed)
            else:
                errors[response.status_code] = errors.get(response.status_code, 0) + 1

    await asyncio.gather(*(one_client(i, c) for i, c in enumerate(clients)))
    return samples, errors


def summary(samples: list[float], errors: dict[int, int], streams: int) -> dict[str, Any]:
    return {
        "streams": streams,
        "count": len(samples),
        "p50_ms": percentile(samples, 50),
        "p95_ms": percentile(samples, 95),
        "p99_ms": percentile(samples, 99),
        "max_ms": max(samples) if samples else float("nan"),
        "errors": errors,
    }


@contextlib.asynccontextmanager
async def profiled(pid: int | None, out: Path | None, phase: str) -> AsyncIterator[None]:
    """Sample the API process with py-spy while a phase runs (`--profile DIR`), else nothing.

    Writes `DIR/<phase>.txt`: collapsed stacks, one line per distinct stack with its sample
    count (speedscope and flamegraph.pl read it). Sampled without pausing the API, 100/s.
    """
    if pid is None or out is None:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    spy_path = Path(sys.executable).parent / "py-spy"  # installed with the `bench` extra
    spy = await asyncio.create_subprocess_exec(
        str(spy_path) if spy_path.exists() else "py-spy",
        *("record", "-p", str(pid), "-r", "100", "--nonblocking", "-f", "raw"),
        *("-o", str(out / f"{phase}.txt")),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        await spy.wait()


async def submit(http: httpx.AsyncClient, body: dict[str, Any], count: int) -> list[str]:
    ids = []
    for _ in range(count):
        response = await http.post("/tasks", json=body)
        response.raise_for_status()
        ids.append(response.json()["task_id"])
    return ids


@contextlib.asynccontextmanager
async def churn(
    http: httpx.AsyncClient, args: argparse.Namespace, ids: list[str], streams: Streams | None
) -> AsyncIterator[None]:
    """Start a task every `--churn-s` while measuring (followed by a stream if `streams`)."""

    async def keep_starting() -> None:
        while True:
            [task_id] = await submit(http, ACTIVE_BODY, 1)
            ids.append(task_id)
            if streams is not None:
                await streams.start([task_id], 1)
            await asyncio.sleep(args.churn_s)

    if args.churn_s <= 0:
        yield
        return
    runner = asyncio.create_task(keep_starting())
    try:
        yield
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


@contextlib.contextmanager
def cpu_per_get(meter: CpuMeter, phase: dict[str, Any], gets: int) -> Iterator[None]:
    """Record into `phase` the CPU ms per GET each process used while the phase ran.

    Less noisy than latency on a shared host: what the streams add to the API shows here even
    when other work on the machine decides the percentiles.
    """
    before = meter.sample()
    yield
    after = meter.sample()
    phase["cpu_ms_per_get"] = {
        name: round((after[name] - before[name]) * 1000 / max(gets, 1), 2) for name in after
    }


async def load(
    base_url: str, args: argparse.Namespace, api_pid: int | None, meter: CpuMeter
) -> dict[str, Any]:
    clients = [
        httpx.AsyncClient(base_url=base_url, limits=httpx.Limits(max_connections=1), timeout=30)
        for _ in range(args.clients)
    ]
    control = clients[0]
    phases: dict[str, dict[str, Any]] = {}
    streams = Streams(base_url)
    try:
        held = await submit(control, HELD_BODY, args.held)
        await wait_status(control, held, {"awaiting_approval"}, 120)
        await measure_gets(clients, held, argparse.Namespace(gets=40, rate=args.rate), 0)  # warm

        churned: list[str] = []
        cpu: dict[str, Any] = {}
        async with churn(control, args, churned, None), profiled(api_pid, args.profile, "floor"):
            with cpu_per_get(meter, cpu, args.gets):
                samples, errors = await measure_gets(clients, held, args, 1)
        phases["floor"] = {**summary(samples, errors, 0), **cpu}

        # `--streams` streams on the held tasks (they stay open), plus one on each task
        # started meanwhile, which receives that task's events as they are written.
        await streams.start(held, args.streams)
        await asyncio.sleep(args.settle_s)
        open_before = streams.open
        async with (
            churn(control, args, churned, streams),
            profiled(api_pid, args.profile, "streams"),
        ):
            with cpu_per_get(meter, cpu, args.gets):
                samples, errors = await measure_gets(clients, held, args, 2)
        phases["streams"] = {
            **summary(samples, errors, open_before),
            **cpu,
            "open_at_end": streams.open,
            "refused": streams.refused,
            "events_received": streams.events,
        }
        try:  # not measured: only to leave no work behind
            await wait_status(control, churned, {"completed", "failed"}, 120)
        except TimeoutError as error:
            phases["streams"]["unfinished_tasks"] = str(error)
    finally:
        await streams.close()
        await asyncio.gather(*(c.aclose() for c in clients))
    return phases


async def main_async(args: argparse.Namespace) -> None:
    load_before = load_average()
    async with bench_stack(args) as stack:
        scenario = write_scenario(
            stack.root / "sse.yaml", {"latency_ms": args.latency_ms, "rules": []}
        )
        settings = engine_settings(stack, scenario)
        env = worker_env(stack, settings)
        ready = stack.root / "worker.ready"
        worker = await start_process(
            [sys.executable, "-m", "mahsm.workers"],
            {**env, "MAHSM_READY_FILE": str(ready)},
            stack.root / "worker.log",
        )
        port = free_port()
        api_env = {
            **env,
            "MAHSM_API_HOST": "127.0.0.1",
            "MAHSM_API_PORT": str(port),
            "MAHSM_SSE_MAX_STREAMS_PER_USER": str(args.streams + 1000),
        }
        api = await start_process(
            [sys.executable, "-m", "mahsm.api"], api_env, stack.root / "api.log"
        )
        try:
            await wait_for_file(ready, timeout_s=60, process=worker)
            base_url = f"http://127.0.0.1:{port}"
            await wait_healthy(base_url, api, 60)
            meter = CpuMeter(stack, {"api": api.pid, "worker": worker.pid, "bench": os.getpid()})
            phases = await load(base_url, args, api.pid, meter)
        except BaseException:
            for name in ("worker.log", "api.log"):
                sys.stderr.write((stack.root / name).read_text()[-3000:])
            raise
        finally:
            await stop(api)
            await stop(worker)
    report(args, phases, load_before)


def report(
    args: argparse.Namespace, phases: dict[str, dict[str, Any]], load_before: list[float]
) -> None:
    print()
    print(
        f"GET /tasks/{{id}} of running tasks, {args.rate:g}/s paced over {args.clients} clients,"
        f" a task started every {args.churn_s:g} s (ms)"
    )
    print_table(
        ["phase", "open streams", "count", "p50", "p95", "p99", "max", "errors"],
        [
            [
                name,
                p["streams"],
                p["count"],
                p["p50_ms"],
                p["p95_ms"],
                p["p99_ms"],
                p["max_ms"],
                p["errors"] or "-",
            ]
            for name, p in phases.items()
        ],
    )
    floor, loaded = phases["floor"], phases["streams"]
    verdict = "met" if loaded["p95_ms"] < TARGET_P95_MS else "MISSED"
    added = loaded["p95_ms"] - floor["p95_ms"]
    print(
        f"\np95 with {loaded['streams']} streams: {loaded['p95_ms']:.1f} ms"
        f" (floor with 0 streams: {floor['p95_ms']:.1f} ms, {added:+.1f} ms);"
        f" target < {TARGET_P95_MS:g} ms: {verdict}"
    )
    print(
        "CPU ms per GET (whole phase: GETs, churn, streams):",
        "; ".join(
            f"{name} {floor['cpu_ms_per_get'][name]:.1f} -> {loaded['cpu_ms_per_get'][name]:.1f}"
            for name in floor["cpu_ms_per_get"]
        ),
    )
    print(
        f"open streams at the end: {loaded['open_at_end']};"
        f" streams refused: {loaded['refused'] or 'none'};"
        f" events received while open: {loaded['events_received']}"
    )
    path = write_results(
        "sse_fanout",
        {
            "streams": args.streams,
            "held_tasks": args.held,
            "task_started_every_s": args.churn_s,
            "clients": args.clients,
            "gets_per_phase": args.gets,
            "get_rate_per_s": args.rate,
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "llm_latency_ms": args.latency_ms,
            "target_p95_ms": TARGET_P95_MS,
            "phases": phases,
        },
        args.out,
    )
    print(f"\nwrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200, help="event streams to open")
    parser.add_argument("--held", type=int, default=20, help="running tasks awaiting approval")
    parser.add_argument(
        "--churn-s",
        type=float,
        default=2.0,
        help="start a task this often while measuring (0: none)",
    )
    parser.add_argument("--clients", type=int, default=4, help="concurrent GET clients")
    parser.add_argument("--gets", type=int, default=400, help="GETs per phase")
    parser.add_argument("--rate", type=float, default=20.0, help="GETs per second (all clients)")
    parser.add_argument("--latency-ms", type=float, default=200.0, help="scripted LLM latency")
    parser.add_argument(
        "--settle-s", type=float, default=2.0, help="wait after the streams are open"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="sample the API with py-spy during each phase; stacks written to DIR",
    )
    add_stack_arguments(parser)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
