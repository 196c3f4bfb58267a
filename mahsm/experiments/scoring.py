"""Scoring branches against expected values, and aggregating them per config.

Pure functions: the workflow's scoring activity calls them (a `function` metric runs user
code, so scoring never runs in workflow code).
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Sequence
from typing import Any

from mahsm.code_imports import import_allowed
from mahsm.experiments.configs import ExperimentConfig
from mahsm.experiments.models import (
    Branch,
    BranchStatus,
    ConfigSummary,
    DatasetRow,
    MetricKind,
    MetricSpec,
)

PASS = 0.5
"""A row passes a metric when its score is at least this."""


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    found = re.search(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", str(value))
    return float(found.group()) if found else None


def _field(value: Any, path: str) -> Any:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _expected(metric: MetricSpec, row: DatasetRow) -> Any:
    if metric.expected_key == "expected":
        return row.expected
    if isinstance(row.expected, dict):
        return row.expected.get(metric.expected_key)
    return row.inputs.get(metric.expected_key)


def score(metric: MetricSpec, output: str, value: Any, row: DatasetRow) -> float:
    """The score of one output under one metric, in [0, 1]."""
    expected = _expected(metric, row)
    text = output.strip()

    def norm(item: Any) -> str:
        shown = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
        return shown.strip() if metric.case_sensitive else shown.strip().lower()

    if metric.kind == MetricKind.EXACT_MATCH:
        return float(norm(text) == norm(expected))
    if metric.kind == MetricKind.CONTAINS:
        return float(norm(expected) in norm(text))
    if metric.kind == MetricKind.REGEX:
        flags = 0 if metric.case_sensitive else re.IGNORECASE
        return float(re.search(str(metric.pattern), text, flags) is not None)
    if metric.kind == MetricKind.NUMERIC:
        got, want = _number(text), _number(expected)
        if got is None or want is None:
            return 0.0
        return float(abs(got - want) <= metric.tolerance)
    if metric.kind == MetricKind.JSON_FIELD:
        got = _field(value if value is not None else text, str(metric.field))
        want = _field(expected, str(metric.field)) if isinstance(expected, dict) else expected
        return float(got is not None and norm(got) == norm(want))
    if metric.kind == MetricKind.LLM_JUDGE:
        raise ValueError("llm_judge is scored by an LLM call, not here")
    module_name, _, attribute = str(metric.function).rpartition(".")
    function = getattr(import_allowed(module_name), attribute)
    result = float(function(output, row.model_dump(mode="json")))
    return min(1.0, max(0.0, result)) if math.isfinite(result) else 0.0


def judge_messages(metric: MetricSpec, output: str, row: DatasetRow) -> list[dict[str, str]]:
    """The grading prompt of an `llm_judge` metric: rubric, inputs, expected, answer."""
    expected = "" if row.expected is None else f"\nExpected answer: {json.dumps(row.expected)}"
    return [
        {
            "role": "system",
            "content": "You grade an answer by the rubric. Reply with JSON"
            ' {"score": <number from 0 to 1>, "reason": "<one sentence>"}.',
        },
        {
            "role": "user",
            "content": f"Grade this answer.\nRubric: {metric.rubric}\n"
            f"Inputs: {json.dumps(row.inputs, ensure_ascii=False)}{expected}\n"
            f"Answer: {output}",
        },
    ]


JUDGE_SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "number"}, "reason": {"type": "string"}},
    "required": ["score"],
}


def judge_score(content: str | None) -> float:
    """The score a judge answered, clamped to [0, 1]; 0 when it answered no number."""
    try:
        value = float(json.loads(content or "")["score"])
    except (ValueError, KeyError, TypeError):
        return 0.0
    return min(1.0, max(0.0, value)) if math.isfinite(value) else 0.0


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(
    configs: Sequence[ExperimentConfig],
    config_ids: Sequence[str],
    branches: Sequence[Branch],
    primary_metric: str | None,
) -> list[ConfigSummary]:
    """Aggregates per config, in config order.

    The mean score of the primary metric with a 95% interval (normal approximation), pass
    rate, latency percentiles, tokens and cost per row, errors.
    """
    summaries = []
    for config, cid in zip(configs, config_ids, strict=True):
        mine = [b for b in branches if b.config_id == cid and b.status != BranchStatus.PENDING]
        done = [b for b in mine if b.status in (BranchStatus.SUCCESS, BranchStatus.FAILED)]
        latencies = [b.duration_s for b in done if b.duration_s is not None]
        summary = ConfigSummary(
            config_id=cid,
            label=config.display(),
            branches=len(mine),
            errors=sum(b.status == BranchStatus.FAILED for b in mine),
            p50_latency_s=_percentile(latencies, 0.5),
            p95_latency_s=_percentile(latencies, 0.95),
            tokens_per_row=(sum(b.usage.total_tokens for b in done) / len(done)) if done else 0,
            cost_per_row=(sum(b.usage.cost_usd for b in done) / len(done)) if done else 0,
            judge_cost_usd=round(sum(b.judge_usage.cost_usd for b in mine), 10),
        )
        names = sorted({name for b in done for name in b.scores})
        for name in names:
            # A failed branch scores 0 on every metric: errors count against a config.
            values = [b.scores.get(name, 0.0) for b in done]
            summary.scores[name] = statistics.fmean(values)
        key = primary_metric if primary_metric in names else (names[0] if names else None)
        if key is not None:
            values = [b.scores.get(key, 0.0) for b in done]
            summary.mean_score = statistics.fmean(values)
            if len(values) > 1:
                summary.ci95 = 1.96 * statistics.stdev(values) / math.sqrt(len(values))
            else:
                summary.ci95 = 0.0
            summary.pass_rate = sum(v >= PASS for v in values) / len(values)
        summaries.append(summary)
    return summaries


def winner(summaries: Sequence[ConfigSummary]) -> str | None:
    """The config with the highest mean score, ties broken by lower cost per row."""
    scored = [s for s in summaries if s.mean_score is not None]
    if not scored:
        return None
    best = max(scored, key=lambda s: (s.mean_score or 0.0, -s.cost_per_row))
    return best.config_id
