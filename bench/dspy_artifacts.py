"""Prompt artifact save and load (with tool validation): 10 tools, 20 demos, real Postgres.

Each save stores a new version (the instructions differ per round, so the content hash is
new); each load reads the latest version, rebuilds the program, loads its state and checks
the 10 tools against the saved schemas. Medians over `--repeats` rounds.
Run: `python -m bench.dspy_artifacts [--repeats 50]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import dspy

from bench.common import add_stack_arguments, bench_stack, print_table, write_results
from mahsm import prompt
from mahsm.contracts.llm import ToolSpec

TOOLS = [
    ToolSpec(
        name=f"tool_{i}",
        description=f"tool number {i}",
        parameters={
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
            "required": ["query"],
        },
    )
    for i in range(10)
]


def _program(round_: int) -> dspy.ChainOfThought:
    program = dspy.ChainOfThought(
        dspy.Signature("question: str, context: list[str] -> answer: str").with_instructions(
            f"Answer precisely (round {round_})."
        )
    )
    program.predict.demos = [
        dspy.Example(
            question=f"question {i}?", context=[f"fact {i}"], reasoning="...", answer=str(i)
        )
        for i in range(20)
    ]
    return program


async def run(args: argparse.Namespace) -> None:
    async with bench_stack(args) as stack:
        saves, loads = [], []
        for round_ in range(args.repeats):
            program = _program(round_)
            started = time.perf_counter()
            await prompt.save(program, "bench", tools=TOOLS, model="openai/x", pool=stack.pool)
            saves.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await prompt.load("bench", tools=TOOLS, pool=stack.pool)
            loads.append((time.perf_counter() - started) * 1000)
    figures = {
        "save_median_ms": round(statistics.median(saves), 2),
        "load_median_ms": round(statistics.median(loads), 2),
        "save_p95_ms": round(sorted(saves)[int(len(saves) * 0.95)], 2),
        "load_p95_ms": round(sorted(loads)[int(len(loads) * 0.95)], 2),
        "rounds": args.repeats,
    }
    print_table(["figure", "value"], list(figures.items()))
    write_results("dspy_artifacts", figures, args.out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=50)
    add_stack_arguments(parser)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
