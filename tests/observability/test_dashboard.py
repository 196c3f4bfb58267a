"""The Grafana dashboard in deploy/ reads metrics MAHSM exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

from mahsm import metrics

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "mahsm-dashboard.json"
SUFFIXES = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}


def test_every_mahsm_metric_the_dashboard_reads_is_exposed() -> None:
    assert metrics.LLM_CALLS is not None  # the module registers MAHSM's metrics
    exposed = {
        family.name + suffix
        for family in REGISTRY.collect()
        for suffix in SUFFIXES.get(family.type, [""])
    }
    dashboard = json.loads(DASHBOARD.read_text())
    read = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bmahsm_[a-z_]+\b", target["expr"])
    }
    assert read, "the dashboard reads MAHSM's metrics"
    assert read <= exposed, sorted(read - exposed)
