"""A DSPy `predict` step against a plain `llm` step: engine cost per step, side by side.

Two pipelines of `--steps` sequential steps on the zero-latency scripted model, run
alternately on the same workers and servers: one of `llm` steps, one of `signature` steps
with `module: predict` (DSPy formats the prompt and parses the typed answer in the workflow,
the LM call is the same `llm_complete` activity). Reports the median per-step time of each
and their ratio. Run: `python -m bench.dspy_step_overhead [--steps 10] [--repeats 5]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from bench.common import (
    add_stack_arguments,
    bench_stack,
    engine_settings,
    print_table,
    running_workers,
    write_results,
    write_scenario,
)
from mahsm.contracts.pipeline import Pipeline
from mahsm.contracts.task import TaskRequest, TaskStatus
from mahsm.tasks import start_task

ANSWER = "[[ ## answer ## ]]\nfine\n\n[[ ## score ## ]]\n3\n\n[[ ## completed ## ]]"


def _pipeline(kind: str, steps: int) -> Pipeline:
    if kind == "llm":
        body: dict[str, Any] = {"kind": "llm", "prompt": "Rate this: {text}"}
    else:
        body = {"kind": "signature", "signature": "text -> answer: str, score: int"}
    return Pipeline.model_validate(
        {
            "name": f"bench-{kind}",
            "inputs": {"text": "str"},
            "steps": [{"name": f"s{i}", **body} for i in range(steps)],
        }
    )


async def run(args: argparse.Namespace) -> None:
    scenario = {
        "rules": [
            {"purpose": "step", "match": "Your output fields", "respond": {"content": ANSWER}}
        ]
    }
    async with bench_stack(args) as stack:
        settings = engine_settings(stack, write_scenario(stack.root / "s.yaml", scenario))
        per_step: dict[str, list[float]] = {"llm": [], "predict": []}
        async with running_workers(stack, settings):
            for round_ in range(args.repeats + 1):  # the first round warms up, not counted
                for kind in ("llm", "predict"):
                    request = TaskRequest(
                        description=f"benchmark pipeline of {kind} steps",
                        pipeline=_pipeline(kind, args.steps),
                        inputs={"text": "the service was quick"},
                    )
                    started = time.perf_counter()
                    handle = await start_task(
                        stack.client, request, queue_prefix=settings.queue_prefix
                    )
                    state = await handle.result()
                    elapsed = time.perf_counter() - started
                    assert state.status == TaskStatus.COMPLETED, state.error
                    if round_:
                        per_step[kind].append(elapsed * 1000 / args.steps)
    llm, predict = (statistics.median(per_step[k]) for k in ("llm", "predict"))
    figures = {
        "steps": args.steps,
        "repeats": args.repeats,
        "llm_step_median_ms": round(llm, 2),
        "predict_step_median_ms": round(predict, 2),
        "ratio_predict_over_llm": round(predict / llm, 3),
    }
    print_table(["figure", "value"], list(figures.items()))
    write_results("dspy_step_overhead", figures, args.out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    add_stack_arguments(parser)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
