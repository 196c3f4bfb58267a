"""API latency: p50/p95/p99 of `POST /tasks` and `GET /tasks/{id}` with 20 concurrent clients.

Three processes, as deployed: the API (`python -m api`, uvicorn), one worker
(`python -m workers`) and this load generator (httpx, one connection per client). The
scripted model answers after `--latency-ms` (default 100 ms), so tasks are running while they
are read: `GET` answers live (the workflow's `state` query) while a task runs and from
Postgres once it has ended; both are reported, and the mix.

Phases: warm-up; every client POSTs `--posts` tasks back to back; then every client GETs
`--gets` random tasks among those created (by then most have ended); GETs issued during the
POST phase (each client reads the task it just created) give the live figure.

Run: `python -m bench.api_latency [--clients 20] [--posts 10] [--gets 30]`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from typing import Any

import httpx

from bench.common import (
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

BODY = {"description": "Benchmark task: summarise the quarterly numbers [api]"}
TERMINAL = {"completed", "failed", "cancelled", "timed_out"}


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
    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {"post": [], "get_live": [], "get_stored": []}
        self.errors: dict[str, int] = {}

    def add(self, kind: str, started: float, response: httpx.Response) -> None:
        elapsed_ms = (time.perf_counter() - started) * 1000
        if response.status_code >= 400:
            key = f"{kind} {response.status_code}"
            self.errors[key] = self.errors.get(key, 0) + 1
            return
        if kind == "get":
            status = response.json()["task"]["status"]
            kind = "get_stored" if status in TERMINAL else "get_live"
        self.samples[kind].append(elapsed_ms)


async def client_posts(
    http: httpx.AsyncClient, count: int, ids: list[str], recorder: Recorder
) -> None:
    for _ in range(count):
        started = time.perf_counter()
        response = await http.post("/tasks", json=BODY)
        recorder.add("post", started, response)
        if response.status_code == 202:
            task_id = response.json()["task_id"]
            ids.append(task_id)
            started = time.perf_counter()
            recorder.add("get", started, await http.get(f"/tasks/{task_id}"))


async def client_gets(
    http: httpx.AsyncClient, count: int, ids: list[str], recorder: Recorder, seed: int
) -> None:
    rng = random.Random(seed)
    for _ in range(count):
        task_id = rng.choice(ids)
        started = time.perf_counter()
        recorder.add("get", started, await http.get(f"/tasks/{task_id}"))


async def load(base_url: str, args: argparse.Namespace) -> tuple[Recorder, dict[str, float]]:
    # One connection per client, as 20 independent callers would have.
    clients = [
        httpx.AsyncClient(base_url=base_url, limits=httpx.Limits(max_connections=1), timeout=30)
        for _ in range(args.clients)
    ]
    ids: list[str] = []
    try:
        warm = Recorder()
        await asyncio.gather(*(client_posts(c, 2, ids, warm) for c in clients))
        recorder = Recorder()
        ids.clear()
        started = time.perf_counter()
        await asyncio.gather(*(client_posts(c, args.posts, ids, recorder) for c in clients))
        post_phase = time.perf_counter() - started
        started = time.perf_counter()
        await asyncio.gather(
            *(client_gets(c, args.gets, ids, recorder, i) for i, c in enumerate(clients))
        )
        get_phase = time.perf_counter() - started
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    return recorder, {"post_phase_s": post_phase, "get_phase_s": get_phase}


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
            [sys.executable, "-m", "workers"],
            {**env, "MAHSM_READY_FILE": str(ready)},
            stack.root / "worker.log",
        )
        port = free_port()
        api = await start_process(
            [sys.executable, "-m", "api"],
            {**env, "MAHSM_API_HOST": "127.0.0.1", "MAHSM_API_PORT": str(port)},
            stack.root / "api.log",
        )
        try:
            await wait_for_file(ready, timeout_s=60, process=worker)
            base_url = f"http://127.0.0.1:{port}"
            await wait_healthy(base_url, api, 60)
            recorder, phases = await load(base_url, args)
        except BaseException:
            for name in ("worker.log", "api.log"):
                sys.stderr.write((stack.root / name).read_text()[-3000:])
            raise
        finally:
            await stop(api)
            await stop(worker)
    await report(args, recorder, phases, load_before)


def summary(samples: list[float]) -> dict[str, Any]:
    return {
        "count": len(samples),
        "p50_ms": percentile(samples, 50),
        "p95_ms": percentile(samples, 95),
        "p99_ms": percentile(samples, 99),
        "max_ms": max(samples) if samples else float("nan"),
    }


async def report(
    args: argparse.Namespace,
    recorder: Recorder,
    phases: dict[str, float],
    load_before: list[float],
) -> None:
    s = recorder.samples
    rows = {
        "POST /tasks": summary(s["post"]),
        "GET /tasks/{id} (all)": summary(s["get_live"] + s["get_stored"]),
        "GET /tasks/{id} live": summary(s["get_live"]),
        "GET /tasks/{id} stored": summary(s["get_stored"]),
    }
    print()
    print(f"API latency, {args.clients} concurrent clients (ms)")
    print_table(
        ["request", "count", "p50", "p95", "p99", "max"],
        [
            [name, r["count"], r["p50_ms"], r["p95_ms"], r["p99_ms"], r["max_ms"]]
            for name, r in rows.items()
        ],
    )
    if recorder.errors:
        print(f"errors: {recorder.errors}")
    path = write_results(
        "api_latency",
        {
            "clients": args.clients,
            "posts_per_client": args.posts,
            "gets_per_client": args.gets,
            "llm_latency_ms": args.latency_ms,
            "requests": rows,
            "errors": recorder.errors,
            "phases": phases,
            "load_average_before": load_before,
            "load_average_after": load_average(),
        },
        args.out,
    )
    print(f"\nwrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients")
    parser.add_argument("--posts", type=int, default=10, help="POSTs per client")
    parser.add_argument("--gets", type=int, default=30, help="GETs per client after the POSTs")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="scripted LLM latency")
    add_stack_arguments(parser)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
