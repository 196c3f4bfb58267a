"""Shared pieces of the benchmarks: the real servers, in-process workers, stats, output.

Every benchmark starts its own embedded Postgres and Temporal dev server on free loopback
ports (or uses existing ones given by `--temporal-address` / `--database-url`), runs real
MAHSM workers, and writes its figures as JSON to `bench/results/`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import yaml
from temporalio.client import Client
from temporalio.worker import Worker

from mahsm.contracts.task import Capability
from mahsm.db.migrate import migrate
from mahsm.db.pool import create_pool
from mahsm.devstack.postgres import EmbeddedPostgres
from mahsm.devstack.process import free_port
from mahsm.devstack.temporal import TemporalDevServer
from mahsm.settings import Settings, load_settings
from mahsm.temporal_client import connect
from mahsm.workers.main import build_workers

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Stack:
    """Running servers and a client; `root` holds their data and logs."""

    temporal_address: str
    database_url: str
    client: Client
    pool: asyncpg.Pool
    root: Path
    servers: list[Any] = field(default_factory=list)


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags every benchmark takes to use existing servers instead of embedded ones."""
    parser.add_argument("--temporal-address", help="use this Temporal server (host:port)")
    parser.add_argument("--database-url", help="use this Postgres (a migrated MAHSM database)")
    parser.add_argument(
        "--temporal-db",
        choices=("file", "memory"),
        default="file",
        help="dev server persistence: SQLite file (as `mahsm up`) or in memory",
    )
    parser.add_argument("--out", type=Path, help="JSON output path (default bench/results/)")


@asynccontextmanager
async def bench_stack(args: argparse.Namespace) -> AsyncIterator[Stack]:
    """Embedded Postgres + Temporal dev server (unless given), a client and a DB pool."""
    # SIGTERM (e.g. from `timeout`) cancels the benchmark so the servers below are stopped.
    main_task = asyncio.current_task()
    if main_task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    root = Path(tempfile.mkdtemp(prefix="mahsm-bench-"))
    root.chmod(0o711)  # the embedded Postgres may run as an unprivileged user
    servers: list[Any] = []
    try:
        database_url = args.database_url
        if database_url is None:
            postgres = EmbeddedPostgres(
                root / "pgdata", port=free_port(), log_path=root / "postgres.log"
            )
            await asyncio.to_thread(postgres.start)
            servers.append(postgres)
            database_url = postgres.url
        await migrate(database_url)
        address = args.temporal_address
        if address is None:
            temporal = TemporalDevServer(
                root / "temporal.db" if args.temporal_db == "file" else None,
                port=free_port(),
                ui_port=None,
                log_path=root / "temporal.log",
            )
            address = await asyncio.to_thread(temporal.start)
            servers.append(temporal)
        settings = load_settings(_env_file=None, temporal_address=address)
        client = await connect(settings)
        pool = await create_pool(database_url, max_size=20, session_reset=False)  # as a worker's
        try:
            yield Stack(
                temporal_address=address,
                database_url=database_url,
                client=client,
                pool=pool,
                root=root,
                servers=servers,
            )
        finally:
            await pool.close()
    finally:
        for server in reversed(servers):
            await asyncio.to_thread(server.stop)
        shutil.rmtree(root, ignore_errors=True)


class CpuMeter:
    """CPU seconds used by named processes and the stack's servers (Postgres with its children)."""

    def __init__(self, stack: Stack, processes: dict[str, int]) -> None:
        self.groups = {name: psutil.Process(pid) for name, pid in processes.items()}
        for server in stack.servers:
            process = getattr(server, "process", None)
            if process is not None and process.pid is not None:
                name = "temporal" if "Temporal" in type(server).__name__ else "postgres"
                self.groups[name] = psutil.Process(process.pid)

    def sample(self) -> dict[str, float]:
        """Total user+system CPU seconds per group so far."""
        totals: dict[str, float] = {}
        for name, root in self.groups.items():
            family = [root, *root.children(recursive=True)] if name == "postgres" else [root]
            total = 0.0
            for proc in family:
                try:
                    t = proc.cpu_times()
                    total += t.user + t.system
                except psutil.Error:
                    pass
            totals[name] = total
        return totals


def write_scenario(path: Path, scenario: dict[str, Any]) -> Path:
    """Write a scripted-provider scenario file (format: docs/llm.md)."""
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    return path


def engine_settings(stack: Stack, scenario_file: Path, **overrides: Any) -> Settings:
    """Worker settings on a fresh queue prefix, the scripted model reading `scenario_file`."""
    values: dict[str, Any] = {
        "queue_prefix": f"b{uuid.uuid4().hex[:10]}",
        "data_dir": stack.root / "mahsm-data",
        "scripted_scenario": scenario_file,
        "default_model": "scripted/bench",
        "temporal_address": stack.temporal_address,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return load_settings(_env_file=None, **values)


@asynccontextmanager
async def running_workers(
    stack: Stack,
    settings: Settings,
    *,
    capabilities: Sequence[Capability] | None = None,
) -> AsyncIterator[list[Worker]]:
    """MAHSM's workers (tasks queue + one pool), in this process, as `mahsm worker` builds them."""
    workers = build_workers(
        client=stack.client, pool=stack.pool, settings=settings, capabilities=capabilities
    )
    async with AsyncExitStack() as exits:
        for worker in workers:
            await exits.enter_async_context(worker)
        yield workers


@asynccontextmanager
async def running_floor_workers(stack: Stack, settings: Settings) -> AsyncIterator[tuple[str, str]]:
    """Bare Temporal workers for `bench.floor_workflows`, tuned like MAHSM's; yields the
    (parent, child) task queues."""
    from bench.floor_workflows import FloorChild, FloorTask, floor_sleep

    prefix = f"floor{uuid.uuid4().hex[:8]}"
    queues = (f"{prefix}-tasks", f"{prefix}-pool")
    common: dict[str, Any] = {
        "max_concurrent_activities": settings.worker_max_concurrent_activities,
        "max_concurrent_workflow_tasks": settings.worker_max_concurrent_workflow_tasks,
    }
    workers = [
        Worker(
            stack.client,
            task_queue=queues[0],
            workflows=[FloorTask],
            activities=[floor_sleep],
            **common,
        ),
        Worker(
            stack.client,
            task_queue=queues[1],
            workflows=[FloorChild],
            activities=[floor_sleep],
            **common,
        ),
    ]
    async with AsyncExitStack() as exits:
        for worker in workers:
            await exits.enter_async_context(worker)
        yield queues


async def start_process(
    argv: list[str], env: dict[str, str], log: Path
) -> asyncio.subprocess.Process:
    """Start `argv` with its output in `log`."""
    handle = log.open("wb")
    return await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=handle, stderr=subprocess.STDOUT
    )


async def stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL after 20 s."""
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 20)
        except TimeoutError:
            process.kill()
            await process.wait()


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (other work on the host skews every figure)."""
    return [round(v, 2) for v in os.getloadavg()]


def worker_env(stack: Stack, settings: Settings) -> dict[str, str]:
    """Environment of a `python -m mahsm.workers` subprocess equivalent to `settings`."""
    env = dict(os.environ)
    env.update(
        {
            "MAHSM_TEMPORAL_ADDRESS": stack.temporal_address,
            "MAHSM_DATABASE_URL": stack.database_url,
            "MAHSM_QUEUE_PREFIX": settings.queue_prefix,
            "MAHSM_DATA_DIR": str(settings.data_dir),
            "MAHSM_SCRIPTED_SCENARIO": str(settings.scripted_scenario),
            "MAHSM_DEFAULT_MODEL": settings.default_model,
            "MAHSM_LOG_LEVEL": "WARNING",
        }
    )
    return env


async def wait_for_file(path: Path, *, timeout_s: float, process: Any = None) -> None:
    """Wait until `path` exists (a worker's ready file)."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if process is not None and process.returncode is not None:
            raise RuntimeError(f"worker exited early with code {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout_s:g}s")
        await asyncio.sleep(0.1)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    """The median (nan when empty)."""
    return statistics.median(values) if values else float("nan")


def machine() -> dict[str, Any]:
    """The host the figures were measured on."""
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A Markdown table on stdout (pasteable into docs/performance.md)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def write_results(name: str, data: dict[str, Any], out: Path | None = None) -> Path:
    """Write `data` (plus the machine and the command line) as JSON; returns the path."""
    path = out or RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv[1:],
        "machine": machine(),
        **data,
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path
