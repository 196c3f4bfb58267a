"""What a circuit breaker adds to an LLM call: its Postgres round trips, measured.

Every call of a guarded model reads its breaker before the provider call (one indexed
SELECT); a counted failure writes it (one short transaction under a row lock); an open
circuit rejects with one read and one probe-claim attempt. Run with
`python -m bench.breaker_overhead` (about 30 s); figures in docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.exceptions import ApplicationError

from bench.common import add_stack_arguments, bench_stack, percentile, print_table, write_results
from mahsm.activities.llm.breaker import BreakerConfig, CircuitBreakers
from mahsm.activities.llm.errors import classify_status

CALLS = 2000
CONCURRENT = 50


async def timed(calls: int, step: Callable[[], Awaitable[Any]]) -> list[float]:
    """Milliseconds of each of `calls` sequential steps."""
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        await step()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def rejected(breakers: CircuitBreakers, model: str) -> None:
    try:
        await breakers.admit(model, has_fallback=True)
    except ApplicationError:
        return
    raise AssertionError("the circuit should be open")


async def main(args: argparse.Namespace) -> None:
    async with bench_stack(args) as stack:
        counting = CircuitBreakers(stack.pool, BreakerConfig(failures=5, cooldown_s=3600))
        breakers = CircuitBreakers(stack.pool, BreakerConfig(failures=1, cooldown_s=3600))
        error = classify_status(503, "overloaded", provider="openai")
        admitted = await breakers.admit("openai/down", has_fallback=True)
        await breakers.failed(admitted, error)  # opens it for the hour

        closed = await timed(CALLS, lambda: counting.admit("openai/up", has_fallback=True))
        open_ = await timed(CALLS, lambda: rejected(breakers, "openai/down"))
        # Failures keep being counted once the circuit is open (calls admitted before it
        # opened): the default threshold's five times stay in the row.
        admission = await counting.admit("openai/failing", has_fallback=True)
        failures = await timed(CALLS, lambda: counting.failed(admission, error))

        started = time.perf_counter()
        for _ in range(CALLS // CONCURRENT):
            await asyncio.gather(
                *(counting.admit("openai/up", has_fallback=True) for _ in range(CONCURRENT))
            )
        per_s = CALLS / (time.perf_counter() - started)

    rows = [
        ["admit, circuit closed (every guarded call)", *_stats(closed)],
        ["admit, circuit open (rejected, no provider call)", *_stats(open_)],
        ["failed, a counted failure recorded", *_stats(failures)],
    ]
    print_table(["step", "p50 ms", "p95 ms", "p99 ms"], rows)
    print(f"\nclosed-circuit admits, {CONCURRENT} at a time: {per_s:.0f}/s")
    path = write_results(
        "breaker_overhead",
        {
            "calls": CALLS,
            "ms": {
                name: dict(zip(("p50", "p95", "p99"), _stats(s), strict=True))
                for name, s in (
                    ("admit_closed", closed),
                    ("admit_open", open_),
                    ("failed", failures),
                )
            },  # fmt: skip
            "concurrent_admits_per_s": per_s,
        },
        args.out,
    )
    print(f"wrote {path}")


def _stats(samples: list[float]) -> list[float]:
    return [percentile(samples, q) for q in (50, 95, 99)]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    add_stack_arguments(parser)
    asyncio.run(main(parser.parse_args()))
