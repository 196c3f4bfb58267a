"""Signature parse + validation of a `signature` step: the cost at submit and at run start.

Times `validate_pipeline` on a one-step pipeline whose step has a typed DSPy signature
(DSPy parses it; MAHSM caches the parsed signature per string), cold (first parse) and warm
(median of `--repeats` runs). No servers. Run: `python -m bench.dspy_signature`.
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.common import print_table, write_results
from mahsm.contracts.pipeline import Pipeline
from mahsm.dspy.signatures import parse_signature
from mahsm.pipelines import validate_pipeline

SIGNATURE = (
    "question: str, context: list[str] -> answer: str, confidence: float,"
    " category: Literal['geo', 'math', 'other'], tags: list[str]"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    pipeline = Pipeline.model_validate(
        {
            "name": "bench",
            "inputs": {"question": "str", "context": "list"},
            "steps": [{"name": "ask", "kind": "signature", "signature": SIGNATURE}],
        }
    )
    started = time.perf_counter()
    assert validate_pipeline(pipeline) == []
    cold_ms = (time.perf_counter() - started) * 1000
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        validate_pipeline(pipeline)
        times.append((time.perf_counter() - started) * 1000)
    parse_signature.cache_clear()
    uncached = []
    for _ in range(50):
        started = time.perf_counter()
        parse_signature(SIGNATURE)
        uncached.append((time.perf_counter() - started) * 1000)
        parse_signature.cache_clear()
    figures = {
        "cold_validate_ms": round(cold_ms, 3),
        "warm_validate_median_ms": round(statistics.median(times), 4),
        "warm_validate_p95_ms": round(sorted(times)[int(len(times) * 0.95)], 4),
        "uncached_parse_median_ms": round(statistics.median(uncached), 3),
    }
    print_table(["figure", "value"], list(figures.items()))
    write_results("dspy_signature", figures)


if __name__ == "__main__":
    main()
