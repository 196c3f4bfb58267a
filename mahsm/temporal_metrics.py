"""Temporal's SDK/Core metrics in the process's Prometheus registry.

Workflow and activity task latencies, slots, polls, requests: a worker serves them on its
one `/metrics` endpoint beside MAHSM's own.

Core reports its metrics into a `MetricBuffer` of the `Runtime` the client is built on;
`TemporalMetrics.drain` moves them into `prometheus_client` metrics named `temporal_<name>`
(durations in seconds), and `run` drains every few seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from temporalio.runtime import (
    BUFFERED_METRIC_KIND_COUNTER,
    BUFFERED_METRIC_KIND_GAUGE,
    MetricBuffer,
    MetricBufferDurationFormat,
    Runtime,
    TelemetryConfig,
)

BUFFER_SIZE = 20_000
"""Updates held between drains; past it Core drops updates (and says so in its log)."""
DRAIN_EVERY_S = 2.0

_Metric = Counter | Gauge | Histogram


class TemporalMetrics:
    """A Temporal runtime whose metrics land in `registry` (the default one)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.buffer = MetricBuffer(BUFFER_SIZE, duration_format=MetricBufferDurationFormat.SECONDS)
        self.runtime = Runtime(telemetry=TelemetryConfig(metrics=self.buffer))
        self._metrics: dict[str, tuple[_Metric, list[str]]] = {}

    def drain(self) -> int:
        """Apply the buffered updates; returns how many there were."""
        updates = self.buffer.retrieve_updates()
        for update in updates:
            metric, labels = self._metric(
                update.metric.name, update.metric.kind, update.metric.description, update.attributes
            )
            values = [str(update.attributes.get(name, "")) for name in labels]
            target = metric.labels(*values) if labels else metric
            if isinstance(target, Counter):
                target.inc(update.value)
            elif isinstance(target, Gauge):
                target.set(update.value)
            else:
                target.observe(update.value)
        return len(updates)

    async def run(self) -> None:
        """Drain every `DRAIN_EVERY_S` until cancelled."""
        while True:
            self.drain()
            await asyncio.sleep(DRAIN_EVERY_S)

    def _metric(
        self, name: str, kind: int, description: str | None, attributes: Mapping[str, object]
    ) -> tuple[_Metric, list[str]]:
        found = self._metrics.get(name)
        if found is None:
            # The first update fixes the label names; later ones fill those they have.
            labels = sorted(attributes)
            full = name if name.startswith("temporal_") else f"temporal_{name}"
            text = description or name
            metric: _Metric
            if kind == BUFFERED_METRIC_KIND_COUNTER:
                metric = Counter(full, text, labels, registry=self.registry)
            elif kind == BUFFERED_METRIC_KIND_GAUGE:
                metric = Gauge(full, text, labels, registry=self.registry)
            else:
                metric = Histogram(full, text, labels, registry=self.registry)
            found = self._metrics[name] = (metric, labels)
        return found
