"""Metrics and per-config aggregates on known values."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mahsm.contracts.task import Usage
from mahsm.experiments.configs import ExperimentConfig
from mahsm.experiments.models import Branch, BranchStatus, DatasetRow, MetricSpec
from mahsm.experiments.scoring import score, summarize, winner


@pytest.mark.parametrize(
    ("metric", "output", "expected", "want"),
    [
        ({"kind": "exact_match"}, " Paris ", "paris", 1.0),
        ({"kind": "exact_match", "case_sensitive": True}, "Paris", "paris", 0.0),
        ({"kind": "contains"}, "The capital is Paris.", "paris", 1.0),
        ({"kind": "regex", "pattern": r"^\d{3}$"}, "123", None, 1.0),
        ({"kind": "regex", "pattern": r"^\d{3}$"}, "12a", None, 0.0),
        ({"kind": "numeric", "tolerance": 0.01}, "about 3.141", 3.14, 1.0),
        ({"kind": "numeric"}, "3.2", "3.14", 0.0),
        ({"kind": "json_field", "field": "a.b"}, '{"a": {"b": 7}}', 7, 1.0),
        ({"kind": "json_field", "field": "a.b"}, '{"a": {"b": 8}}', {"a": {"b": 7}}, 0.0),
    ],
)
def test_metrics(metric: dict[str, object], output: str, expected: object, want: float) -> None:
    spec = MetricSpec.model_validate(metric)
    assert score(spec, output, None, DatasetRow(expected=expected)) == want


def _branch(cid: str, status: BranchStatus, value: float, seconds: float, cost: float) -> Branch:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return Branch(
        config_id=cid,
        config=ExperimentConfig(),
        index=0,
        row=0,
        status=status,
        started_at=start,
        duration_s=seconds,
        scores={"m": value},
        usage=Usage(input_tokens=10, output_tokens=5, cost_usd=cost),
    )


def test_aggregates_interval_percentiles_and_winner_with_cost_tie_break() -> None:
    configs = [ExperimentConfig(label=label) for label in "abc"]
    branches = [
        _branch("a", BranchStatus.SUCCESS, 1.0, 1.0, 0.02),
        _branch("a", BranchStatus.SUCCESS, 0.0, 3.0, 0.02),
        _branch("a", BranchStatus.FAILED, 0.0, 5.0, 0.02),
        _branch("b", BranchStatus.SUCCESS, 1.0, 1.0, 0.01),
        _branch("b", BranchStatus.SUCCESS, 1.0, 1.0, 0.01),
        _branch("c", BranchStatus.SUCCESS, 1.0, 1.0, 0.001),
        _branch("c", BranchStatus.SUCCESS, 1.0, 2.0, 0.001),
    ]
    a, b, c = summarize(configs, ["a", "b", "c"], branches, "m")
    assert a.mean_score == pytest.approx(1 / 3)
    assert a.ci95 == pytest.approx(1.96 * (1 / 3) ** 0.5 / 3**0.5)
    assert a.pass_rate == pytest.approx(1 / 3) and a.errors == 1
    assert (a.p50_latency_s, a.p95_latency_s) == (3.0, pytest.approx(4.8))
    assert a.tokens_per_row == 15 and a.cost_per_row == pytest.approx(0.02)
    assert b.mean_score == c.mean_score == 1.0 and b.ci95 == 0.0
    assert winner([a, b, c]) == "c"  # tie on score: the cheaper config wins
