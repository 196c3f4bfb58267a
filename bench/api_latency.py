"""API latency: p50/p95/p99 of `POST /tasks` and `GET /tasks/{id}` with 20 concurrent clients.

Three processes, as deployed: the API (`python -m mahsm.api`, uvicorn), one worker
(`python -m mahsm.workers`) and this load generator (httpx, one connection per client). The
scripted model answers after `--latency-ms` (default 100 ms), so tasks are running while they
are read: `GET` answers a running task from the workflow's `state` query (bounded at 2 s, then
the Postgres row) and an ended one from Postgres; both are reported, and the mix.

Two regimes, run one after the other on the same servers:

- `idle` (engine not saturated): the API's own cost. Every task is submitted with
  `options.require_approval = true`, so it plans (one LLM call) and then waits for an approval
  that never comes: the worker is free. The 20 clients POST at a paced total rate of
  `--idle-rate` tasks/s (below what the engine sustains), each reading the task it just
  created. Then the clients GET random waiting tasks (live queries the idle worker answers),
  first paced at a total `--idle-get-rate`/s, then back to back (20 requests always in flight:
  the host's two cores, not the engine, are then the queue). Then the tasks are cancelled and
  the same two GET phases read ended tasks (Postgres only).
- `saturated`: every client POSTs `--posts` tasks back to back, reading each right after
  creating it (live), then GETs `--gets` random tasks among those created (by then most have
  ended). 20 closed-loop clients offer far more tasks per second than one worker on this host
  completes, so work queues in the worker and the server; the figures say what a caller sees
  then, not what the API costs.

CPU seconds of every process (API, worker, Temporal, Postgres, this load generator) are
recorded per phase.

Run: `python -m bench.api_latency [--clients 20] [--regimes idle,saturated]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

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

BODY: dict[str, Any] = {"description": "Benchmark task: summarise the quarterly numbers [api]"}
APPROVAL_BODY: dict[str, Any] = {**BODY, "options": {"require_approval": True}}
TERMINAL = {"completed", "failed", "cancelled", "timed_out"}
REGIMES = ("idle", "saturated")


async def wait_healthy(url: str, process: asyncio.subprocess.Process, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as http:
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"API exited with code {process.returncode}")
            try:
                if (await http.get(url + "/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("API not healthy in time")
            await asyncio.sleep(0.2)


class Recorder:
    """Latencies by kind; a `GET` is `live` when the task had not ended, else `stored`."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {"post": [], "get_live": [], "get_stored": []}
        self.errors: dict[str, int] = {}
        self.live_statuses: dict[str, int] = {}

    def add(self, kind: str, started: float, response: httpx.Response) -> None:
        elapsed_ms = (time.perf_counter() - started) * 1000
        if response.status_code >= 400:
            key = f"{kind} {response.status_code}"
            self.errors[key] = self.errors.get(key, 0) + 1
            return
        if kind == "get":
            status = response.json()["task"]["status"]
            kind = "get_stored" if status in TERMINAL else "get_live"
            if kind == "get_live":
                self.live_statuses[status] = self.live_statuses.get(status, 0) + 1
        self.samples[kind].append(elapsed_ms)


class Phases:
    """Wall time and CPU seconds per process of each measured phase."""

    def __init__(self, meter: CpuMeter) -> None:
        self.meter = meter
        self.phases: dict[str, dict[str, Any]] = {}

    async def run(self, name: str, work: Callable[[], Awaitable[Any]]) -> None:
        cpu0 = self.meter.sample()
        started = time.perf_counter()
        await work()
        wall = time.perf_counter() - started
        cpu1 = self.meter.sample()
        self.phases[name] = {
            "wall_s": wall,
            "cpu_s": {k: cpu1[k] - cpu0[k] for k in cpu0},
            "cores_busy": sum(cpu1[k] - cpu0[k] for k in cpu0) / wall if wall else float("nan"),
        }


async def post_and_read(
    http: httpx.AsyncClient, body: dict[str, Any], ids: list[str], recorder: Recorder
) -> None:
    started = time.perf_counter()
    response = await http.post("/tasks", json=body)
    recorder.add("post", started, response)
    if response.status_code == 202:
        task_id = response.json()["task_id"]
        ids.append(task_id)
        started = time.perf_counter()
        recorder.add("get", started, await http.get(f"/tasks/{task_id}"))


async def client_posts(
    http: httpx.AsyncClient,
    count: int,
    ids: list[str],
    recorder: Recorder,
    body: dict[str, Any] = BODY,
) -> None:
    for _ in range(count):
        await post_and_read(http, body, ids, recorder)


async def client_paced_posts(
    http: httpx.AsyncClient,
    index: int,
    clients: int,
    count: int,
    rate: float,
    t0: float,
    ids: list[str],
    recorder: Recorder,
) -> None:
    """The k-th POST of client `index` is due at t0 + (k * clients + index) / rate."""
    for k in range(count):
        delay = t0 + (k * clients + index) / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await post_and_read(http, APPROVAL_BODY, ids, recorder)


async def client_gets(
    http: httpx.AsyncClient,
    count: int,
    ids: list[str],
    recorder: Recorder,
    seed: int,
    pace: tuple[int, int, float, float] | None = None,
) -> None:
    """GET `count` random tasks; with `pace` = (index, clients, rate, t0), paced like POSTs."""
    rng = random.Random(seed)
    for k in range(count):
        if pace is not None:
            index, clients, rate, t0 = pace
            delay = t0 + (k * clients + index) / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        task_id = rng.choice(ids)
        started = time.perf_counter()
        recorder.add("get", started, await http.get(f"/tasks/{task_id}"))


async def wait_status(
    http: httpx.AsyncClient, ids: list[str], accept: set[str], timeout_s: float
) -> None:
    """Wait until every task's status is in `accept` (not measured)."""
    deadline = time.monotonic() + timeout_s
    pending = list(ids)
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} tasks not in {sorted(accept)} in time")
        still = []
        for task_id in pending:
            response = await http.get(f"/tasks/{task_id}")
            if response.status_code != 200 or response.json()["task"]["status"] not in accept:
                still.append(task_id)
        pending = still
        if pending:
            await asyncio.sleep(0.5)


async def idle_regime(
    clients: list[httpx.AsyncClient], args: argparse.Namespace, phases: Phases
) -> dict[str, Recorder]:
    """Engine not saturated: tasks waiting for approval; paced, then back-to-back requests."""
    waiting = {"awaiting_approval"}
    n = len(clients)
    recorders = {
        f"paced POSTs, {args.idle_rate:g}/s": Recorder(),
        f"paced GETs, {args.idle_get_rate:g}/s": Recorder(),
        f"{n} clients back to back": Recorder(),
    }
    paced_posts, paced_gets, closed = recorders.values()
    warm_ids: list[str] = []
    await asyncio.gather(
        *(client_posts(c, 1, warm_ids, Recorder(), APPROVAL_BODY) for c in clients)
    )
    await wait_status(clients[0], warm_ids, waiting, 60)
    ids: list[str] = []
    t0 = time.perf_counter()
    await phases.run(
        "idle: paced POST + live GET",
        lambda: asyncio.gather(
            *(
                client_paced_posts(c, i, n, args.idle_posts, args.idle_rate, t0, ids, paced_posts)
                for i, c in enumerate(clients)
            )
        ),
    )
    await wait_status(clients[0], ids, waiting, 60)

    def gets(name: str, recorder: Recorder, seed: int, paced: bool) -> Awaitable[None]:
        count = args.idle_paced_gets if paced else args.idle_gets
        rate = args.idle_get_rate

        def work() -> Awaitable[Any]:
            t0 = time.perf_counter()
            return asyncio.gather(
                *(
                    client_gets(
                        c, count, ids, recorder, seed + i, (i, n, rate, t0) if paced else None
                    )
                    for i, c in enumerate(clients)
                )
            )

        return phases.run(name, work)

    await gets("idle: paced live GETs", paced_gets, 0, True)
    await gets("idle: live GETs back to back", closed, 100, False)
    everything = warm_ids + ids
    for start in range(0, len(everything), n):
        await asyncio.gather(
            *(
                c.post(f"/tasks/{task_id}/cancel")
                for c, task_id in zip(clients, everything[start : start + n], strict=False)
            )
        )
    await wait_status(clients[0], everything, {"cancelled"}, 60)
    await gets("idle: paced stored GETs", paced_gets, 200, True)
    await gets("idle: stored GETs back to back", closed, 300, False)
    return recorders


async def saturated_regime(
    clients: list[httpx.AsyncClient], args: argparse.Namespace, phases: Phases
) -> dict[str, Recorder]:
    """20 closed-loop clients: far more tasks per second than the engine completes."""
    ids: list[str] = []
    await asyncio.gather(*(client_posts(c, 2, ids, Recorder()) for c in clients))
    recorder = Recorder()
    ids.clear()
    await phases.run(
        "saturated: POST + live GET",
        lambda: asyncio.gather(*(client_posts(c, args.posts, ids, recorder) for c in clients)),
    )
    await phases.run(
        "saturated: GETs",
        lambda: asyncio.gather(
            *(client_gets(c, args.gets, ids, recorder, i) for i, c in enumerate(clients))
        ),
    )
    return {f"{len(clients)} clients back to back": recorder}


async def load(
    base_url: str, args: argparse.Namespace, meter: CpuMeter
) -> tuple[dict[str, dict[str, Recorder]], Phases]:
    # One connection per client, as 20 independent callers would have.
    clients = [
        httpx.AsyncClient(base_url=base_url, limits=httpx.Limits(max_connections=1), timeout=30)
        for _ in range(args.clients)
    ]
    phases = Phases(meter)
    recorders: dict[str, dict[str, Recorder]] = {}
    try:
        # Idle first: the saturated regime leaves a backlog behind.
        if "idle" in args.regimes:
            recorders["idle"] = await idle_regime(clients, args, phases)
        if "saturated" in args.regimes:
            recorders["saturated"] = await saturated_regime(clients, args, phases)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    return recorders, phases


async def main_async(args: argparse.Namespace) -> None:
    load_before = load_average()
    async with bench_stack(args) as stack:
        scenario_file = write_scenario(
            stack.root / "api.yaml", {"latency_ms": args.latency_ms, "rules": []}
        )
        settings = engine_settings(stack, scenario_file)
        env = worker_env(stack, settings)
        ready = stack.root / "worker.ready"
        worker = await start_process(
            [sys.executable, "-m", "mahsm.workers"],
            {**env, "MAHSM_READY_FILE": str(ready)},
            stack.root / "worker.log",
        )
        port = free_port()
        api = await start_process(
            [sys.executable, "-m", "mahsm.api"],
            {**env, "MAHSM_API_HOST": "127.0.0.1", "MAHSM_API_PORT": str(port)},
            stack.root / "api.log",
        )
        try:
            await wait_for_file(ready, timeout_s=60, process=worker)
            base_url = f"http://127.0.0.1:{port}"
            await wait_healthy(base_url, api, 60)
            meter = CpuMeter(
                stack,
                {"api": api.pid, "worker": worker.pid, "load generator": os.getpid()},
            )
            recorders, phases = await load(base_url, args, meter)
        except BaseException:
            for name in ("worker.log", "api.log"):
                sys.stderr.write((stack.root / name).read_text()[-3000:])
            raise
        finally:
            await stop(api)
            await stop(worker)
    report(args, recorders, phases, load_before)


def summary(samples: list[float]) -> dict[str, Any]:
    return {
        "count": len(samples),
        "p50_ms": percentile(samples, 50),
        "p95_ms": percentile(samples, 95),
        "p99_ms": percentile(samples, 99),
        "max_ms": max(samples) if samples else float("nan"),
    }


def rows_of(recorder: Recorder, mixed: bool) -> dict[str, dict[str, Any]]:
    s = recorder.samples
    rows = {"POST /tasks": summary(s["post"])}
    if mixed:  # the figure a caller sees over the whole run
        rows["GET /tasks/{id} (all)"] = summary(s["get_live"] + s["get_stored"])
    rows["GET /tasks/{id} live"] = summary(s["get_live"])
    rows["GET /tasks/{id} stored"] = summary(s["get_stored"])
    return {name: row for name, row in rows.items() if row["count"]}


def report(
    args: argparse.Namespace,
    recorders: dict[str, dict[str, Recorder]],
    phases: Phases,
    load_before: list[float],
) -> None:
    regimes: dict[str, dict[str, dict[str, Any]]] = {
        regime: {
            label: {
                "requests": rows_of(recorder, mixed=regime == "saturated"),
                "errors": recorder.errors,
                "live_statuses": recorder.live_statuses,
            }
            for label, recorder in by_label.items()
        }
        for regime, by_label in recorders.items()
    }
    print()
    print(f"API latency, {args.clients} concurrent clients (ms)")
    print_table(
        ["regime", "load", "request", "count", "p50", "p95", "p99", "max"],
        [
            [regime, label, name, r["count"], r["p50_ms"], r["p95_ms"], r["p99_ms"], r["max_ms"]]
            for regime, by_label in regimes.items()
            for label, data in by_label.items()
            for name, r in data["requests"].items()
        ],
    )
    for regime, by_label in regimes.items():
        for label, data in by_label.items():
            if data["errors"]:
                print(f"{regime}, {label}: errors {data['errors']}")
    names = list(next(iter(phases.phases.values()))["cpu_s"]) if phases.phases else []
    print()
    print("Phases: wall time, CPU seconds per process, cores busy (of 2)")
    print_table(
        ["phase", "wall s", *names, "cores busy"],
        [
            [phase, p["wall_s"], *(p["cpu_s"][k] for k in names), p["cores_busy"]]
            for phase, p in phases.phases.items()
        ],
    )
    path = write_results(
        "api_latency",
        {
            "clients": args.clients,
            "llm_latency_ms": args.latency_ms,
            "idle": {
                "rate_tasks_per_s": args.idle_rate,
                "posts_per_client": args.idle_posts,
                "get_rate_per_s": args.idle_get_rate,
                "paced_gets_per_client": args.idle_paced_gets,
                "gets_per_client": args.idle_gets,
            },
            "saturated": {"posts_per_client": args.posts, "gets_per_client": args.gets},
            "regimes": regimes,
            "phases": phases.phases,
            "load_average_before": load_before,
            "load_average_after": load_average(),
        },
        args.out,
    )
    print(f"\nwrote {path}")


def regimes_arg(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in REGIMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"regimes are {', '.join(REGIMES)}")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients")
    parser.add_argument(
        "--regimes", type=regimes_arg, default=list(REGIMES), help="idle,saturated (both)"
    )
    parser.add_argument(
        "--idle-rate", type=float, default=2.0, help="idle: total POSTs per second (paced)"
    )
    parser.add_argument("--idle-posts", type=int, default=3, help="idle: POSTs per client")
    parser.add_argument(
        "--idle-get-rate", type=float, default=50.0, help="idle: total paced GETs per second"
    )
    parser.add_argument(
        "--idle-paced-gets", type=int, default=10, help="idle: paced GETs per client, per kind"
    )
    parser.add_argument(
        "--idle-gets",
        type=int,
        default=30,
        help="idle: back-to-back GETs per client, per kind (waiting, then ended)",
    )
    parser.add_argument("--posts", type=int, default=10, help="saturated: POSTs per client")
    parser.add_argument("--gets", type=int, default=30, help="saturated: GETs per client")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="scripted LLM latency")
    add_stack_arguments(parser)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
