"""MAHSM's Prometheus metrics, in the process's default registry.

Workers serve them on `MAHSM_METRICS_PORT` (`serve_metrics`), the API on `GET /metrics`.
Label values are bounded sets (models of the deployment, tool names of the catalogue,
statuses, error classes): never ids or text. Names: docs/observability.md.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

LLM_CALLS = Counter(
    "mahsm_llm_calls",
    "LLM call attempts, by model, purpose and outcome",
    ["model", "purpose", "outcome"],
)
LLM_ERRORS = Counter(
    "mahsm_llm_errors",
    "Failed LLM call attempts, by model and error class",
    ["model", "error_class"],
)
LLM_TOKENS = Counter(
    "mahsm_llm_tokens",
    "Tokens of successful LLM calls, by model and direction",
    ["model", "direction"],
)
LLM_COST = Counter("mahsm_llm_cost_usd", "Cost in USD of successful LLM calls, by model", ["model"])
LLM_LATENCY = Histogram(
    "mahsm_llm_latency_seconds",
    "Duration of LLM call attempts",
    ["model"],
    buckets=_LATENCY_BUCKETS,
)
TOOL_CALLS = Counter("mahsm_tool_calls", "Tool calls, by tool and outcome", ["tool", "outcome"])
TOOL_LATENCY = Histogram(
    "mahsm_tool_latency_seconds", "Duration of tool calls", ["tool"], buckets=_LATENCY_BUCKETS
)
MIDDLEWARE_DETECTIONS = Counter(
    "mahsm_middleware_detections", "What middleware found, by '<middleware>.<kind>'", ["detection"]
)
BREAKER_TRANSITIONS = Counter(
    "mahsm_breaker_transitions",
    "Circuit-breaker transitions seen by this process's calls, by model and new state",
    ["model", "state"],
)
TASKS_FINISHED = Counter(
    "mahsm_tasks_finished", "Tasks that reached a terminal status, by status", ["status"]
)
BLOB_BYTES_OFFLOADED = Counter(
    "mahsm_blob_offloaded_bytes", "Bytes written to the blob table (claim checks)"
)
SPANS_DROPPED = Counter(
    "mahsm_trace_spans_dropped", "Spans not exported: queue full or exporter failing"
)
SPANS_EXPORTED = Counter("mahsm_trace_spans_exported", "Spans exported by this process")
LLM_TOKEN_CHUNKS = Counter(
    "mahsm_llm_token_chunks",
    "Live token chunks of running LLM calls, by outcome (sent, dropped)",
    ["outcome"],
)


def exposition() -> tuple[bytes, str]:
    """The default registry in Prometheus' text format, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def serve_metrics(port: int, *, host: str = "0.0.0.0") -> None:  # noqa: S104 - scraped remotely
    """Serve `/metrics` on `host:port` from a daemon thread (the worker's endpoint)."""
    start_http_server(port, addr=host)
