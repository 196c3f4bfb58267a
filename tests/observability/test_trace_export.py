"""The export path's shortcuts keep its guarantees: secrets redacted, counts right.

Spans come from a plain SDK tracer provider of their own (not the process's global one, which
`tests/observability/conftest.py` owns) and go through `CountingExporter` into memory.
"""

from __future__ import annotations

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.contrib.opentelemetry import ReplaySafeTracerProvider

from mahsm.redaction import REDACTED, register_secret
from mahsm.tracing_export import (
    ACTIVITY_SCOPE,
    CachingTracerProvider,
    CountingExporter,
    ExportStats,
    HashedOnceResource,
    PendingSpans,
)

SECRET = "sk-exportcanary-000111"
LATER_SECRET = "laterexportsecret0222"


def made_spans(scope: str, *named: tuple[str, dict[str, object]]) -> list[ReadableSpan]:
    collected = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(collected))
    tracer = provider.get_tracer(scope)
    for name, attributes in named:
        tracer.start_span(name, attributes=attributes).end()  # type: ignore[arg-type]
    return list(collected.get_finished_spans())


def exported(spans: list[ReadableSpan]) -> tuple[list[ReadableSpan], ExportStats]:
    inner, stats = InMemorySpanExporter(), ExportStats()
    CountingExporter(inner, stats, PendingSpans(100)).export(spans)
    return list(inner.get_finished_spans()), stats


def test_secrets_are_redacted_from_names_attributes_and_lists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXPORT_TEST_API_KEY", SECRET)
    spans = made_spans(
        "mahsm.workflows",
        (f"task {SECRET}", {"langfuse.trace.name": f"run {SECRET}", "tags": ["a", SECRET]}),
        ("plan", {"mahsm.task_id": "t-1", "count": 3}),
    )
    (task, plan), stats = exported(spans)
    assert SECRET not in task.name and REDACTED in task.name
    assert task.attributes is not None
    assert task.attributes["langfuse.trace.name"] == f"run {REDACTED}"
    assert task.attributes["tags"] == ("a", REDACTED)
    assert plan is spans[1], "a span with nothing to redact is exported as it is"
    assert stats.exported == 2 and stats.dropped == 0


def test_a_secret_known_later_is_redacted_from_text_seen_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exporter = CountingExporter(InMemorySpanExporter(), ExportStats(), PendingSpans(100))
    attributes: dict[str, object] = {"mahsm.note": f"key {LATER_SECRET}"}
    first = made_spans("mahsm.workflows", ("step", attributes))
    exporter.export(first)  # the text is remembered as clean: the secret is not known yet
    register_secret(LATER_SECRET)
    exporter.export(made_spans("mahsm.workflows", ("step", attributes)))
    inner = exporter.inner
    assert isinstance(inner, InMemorySpanExporter)
    _, second = inner.get_finished_spans()
    assert second.attributes is not None
    assert second.attributes["mahsm.note"] == f"key {REDACTED}"


def test_activity_content_is_trusted_as_redacted_at_its_source_and_ids_are_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # activities/telemetry.py redacts content before it sets it (its `_clip`); the export
    # pass does not scan those texts again, and still scans every other attribute.
    monkeypatch.setenv("EXPORT_TEST_API_KEY", SECRET)
    spans = made_spans(
        ACTIVITY_SCOPE,
        ("llm", {"langfuse.observation.input": "redacted upstream", "mahsm.model": SECRET}),
    )
    ((span,), _) = exported(spans)
    assert span.attributes is not None
    assert span.attributes["langfuse.observation.input"] == "redacted upstream"
    assert span.attributes["mahsm.model"] == REDACTED


def test_the_provider_makes_one_replay_safe_tracer_per_name() -> None:
    provider = CachingTracerProvider(Resource.create({"service.name": "export-test"}))
    assert isinstance(provider, ReplaySafeTracerProvider)  # what Temporal's plugin requires
    assert provider.get_tracer("mahsm.a") is provider.get_tracer("mahsm.a")
    assert provider.get_tracer("mahsm.a") is not provider.get_tracer("mahsm.b")


def test_a_hashed_once_resource_equals_and_hashes_as_its_resource() -> None:
    resource = Resource.create({"service.name": "export-test"})
    hashed = HashedOnceResource(resource)
    assert hashed == resource and hash(hashed) == hash(resource)
    assert {resource: 1}[hashed] == 1
