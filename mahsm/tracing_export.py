"""The export path of MAHSM's spans: filtered early, bounded, redacted, counted.

Kept cheap because every span of every task goes through it (docs/performance.md, "Tracing
overhead"): tracers are made once per name (`CachingTracerProvider`), spans of other
libraries are never handed to the batch processor, and the export-time redaction copies a
span only when it changes one of its strings.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import opentelemetry.sdk.trace as trace_sdk
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import Tracer
from opentelemetry.util import types
from temporalio import workflow
from temporalio.contrib.opentelemetry import ReplaySafeTracerProvider

# `create_tracer_provider` builds its provider around this generator; the class is not
# re-exported by the package, and the provider below is built the same way.
from temporalio.contrib.opentelemetry._id_generator import TemporalIdGenerator

from mahsm import metrics
from mahsm.redaction import known_secrets, output_redactor

SCOPE_PREFIX = "mahsm"
"""Instrumentation scopes of MAHSM's tracers start with this; only those spans are exported."""
ACTIVITY_SCOPE = "mahsm.activities"
REDACTED_AT_SOURCE = frozenset(
    {
        "langfuse.observation.input",
        "langfuse.observation.output",
        "langfuse.observation.status_message",
    }
)
"""Attributes `activities/telemetry.py` sets only through its `_clip` (which redacts): on the
activities' spans the export pass does not scan these texts (prompts, completions, tool
results: most of a trace's characters) a second time."""
SHORT_TEXT_CHARS = 256
"""Attribute strings up to this long have their redaction remembered (ids, names, models)."""
_MAX_REMEMBERED = 4096


class CachingTracerProvider(ReplaySafeTracerProvider):
    """Temporal's replay-safe provider, making one tracer per name instead of one per call.

    `ReplaySafeTracerProvider.get_tracer` wraps a new SDK tracer (and instrumentation scope) on
    every call, and `trace.get_tracer` is called for every span (MAHSM's code and Temporal's
    interceptor alike). A tracer holds no state of its own, so one per name is enough.

    Its sampler is OpenTelemetry's, from the standard variables (`OTEL_TRACES_SAMPLER`,
    `OTEL_TRACES_SAMPLER_ARG`; every trace by default).
    """

    def __init__(self, resource: Resource) -> None:
        generator = TemporalIdGenerator(RandomIdGenerator())
        sdk_provider = trace_sdk.TracerProvider(
            resource=HashedOnceResource(resource), id_generator=generator
        )
        super().__init__(sdk_provider, generator)
        self.sampler = sdk_provider.sampler
        self._tracers: dict[tuple[object, ...], Tracer] = {}

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: types.Attributes | None = None,
    ) -> Tracer:
        """The replay-safe tracer of this name (made on the first call)."""
        key: tuple[object, ...] = (
            instrumenting_module_name,
            instrumenting_library_version,
            schema_url,
        )
        if attributes:  # rare; not hashable as given
            key += (tuple(sorted(attributes.items())),)
        tracer = self._tracers.get(key)
        if tracer is None:
            tracer = super().get_tracer(
                instrumenting_module_name, instrumenting_library_version, schema_url, attributes
            )
            self._tracers[key] = tracer
        return tracer


class HashedOnceResource(Resource):
    """A resource whose hash is computed once.

    The OTLP encoder groups every exported span by its resource (a dict keyed by it), and
    `Resource.__hash__` serialises the attributes to JSON on each call: per span. A
    process's resource never changes.
    """

    def __init__(self, resource: Resource) -> None:
        super().__init__(dict(resource.attributes), resource.schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash


def is_mahsm_span(span: ReadableSpan) -> bool:
    """Whether `span` was made by one of MAHSM's tracers (scope `mahsm` or `mahsm.*`)."""
    scope = span.instrumentation_scope
    name = scope.name if scope is not None else ""
    return name == SCOPE_PREFIX or name.startswith(SCOPE_PREFIX + ".")


@dataclass
class ExportStats:
    """Spans exported and dropped by this process (queue full or export failed)."""

    exported: int = 0
    dropped: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *, exported: int = 0, dropped: int = 0) -> None:
        """Count `exported` and `dropped` spans."""
        with self._lock:
            self.exported += exported
            self.dropped += dropped
        if exported:
            metrics.SPANS_EXPORTED.inc(exported)
        if dropped:
            metrics.SPANS_DROPPED.inc(dropped)


class PendingSpans:
    """Spans handed to the batch processor and not yet through the exporter."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        """Take a place for one span; False when the bound is reached."""
        with self._lock:
            if self.count >= self.limit:
                return False
            self.count += 1
            return True

    def release(self, n: int) -> None:
        """Give back the places of `n` spans that went through the exporter."""
        with self._lock:
            self.count = max(0, self.count - n)


class _Redactor:
    """`redact_output` for span strings, remembering the result for short ones.

    A task's spans repeat the same short strings (ids, model names, operation names) and the
    same secrets apply to all of them: what the last pass found is reused until the process's
    secrets change. Longer strings (prompts, completions) are redacted every time.
    """

    def __init__(self) -> None:
        self._secrets: frozenset[str] | None = None
        self._seen: dict[str, str] = {}
        self._redact = output_redactor()

    def begin(self) -> None:
        """Start a batch: forget what was found if the secrets changed since."""
        secrets = known_secrets()
        if secrets != self._secrets or len(self._seen) > _MAX_REMEMBERED:
            self._seen.clear()
            self._secrets = secrets
            self._redact = output_redactor()

    def text(self, value: str) -> str:
        if len(value) > SHORT_TEXT_CHARS:
            return self._redact(value)
        found = self._seen.get(value)
        if found is None:
            found = self._seen[value] = self._redact(value)
        return found

    def _sequence(self, value: Sequence[object]) -> Sequence[object]:
        cleaned = tuple(self.text(v) if isinstance(v, str) else v for v in value)
        return value if cleaned == tuple(value) else cleaned

    def span(self, span: ReadableSpan) -> ReadableSpan:
        """`span` with the process's secrets removed from its name and attributes.

        The last line of defence, in the export thread: activities redact what they record,
        but workflow code cannot read the environment (the values to redact), and a task's
        text (its trace name) is the user's. The span itself when nothing changed.
        """
        name = self.text(span.name)
        original = span.attributes or {}
        scope = span.instrumentation_scope
        done = REDACTED_AT_SOURCE if scope is not None and scope.name == ACTIVITY_SCOPE else ()
        changed: dict[str, object] = {}
        for key, value in original.items():
            if key in done:
                continue
            if isinstance(value, str):
                cleaned: object = self.text(value)
                if cleaned != value:
                    changed[key] = cleaned
            elif isinstance(value, tuple | list) and any(isinstance(v, str) for v in value):
                cleaned = self._sequence(value)
                if cleaned is not value:
                    changed[key] = cleaned
        if not changed and name == span.name:
            return span
        attributes = {**original, **changed}
        return ReadableSpan(
            name=name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=attributes,  # type: ignore[arg-type]
            events=span.events,
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )


class CountingExporter(SpanExporter):
    """Redacts, then counts what the wrapped exporter sent and failed to send (dropped)."""

    def __init__(self, inner: SpanExporter, stats: ExportStats, pending: PendingSpans) -> None:
        self.inner = inner
        self.stats = stats
        self.pending = pending
        self._redactor = _Redactor()  # used by the one export thread only

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export `spans` redacted; a failure counts them as dropped, never raises."""
        try:
            self._redactor.begin()
            result = self.inner.export([self._redactor.span(span) for span in spans])
        except Exception:  # an exporter bug must not kill the export thread
            result = SpanExportResult.FAILURE
        finally:
            self.pending.release(len(spans))
        if result == SpanExportResult.SUCCESS:
            self.stats.add(exported=len(spans))
        else:
            self.stats.add(dropped=len(spans))
        return result

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter or processor, waiting at most `timeout_millis`."""
        return self.inner.force_flush(timeout_millis)


class BoundedMahsmProcessor(SpanProcessor):
    """MAHSM's spans into `inner` (a batch processor), dropping and counting past the bound."""

    def __init__(
        self, inner: BatchSpanProcessor, pending: PendingSpans, stats: ExportStats
    ) -> None:
        self.inner = inner
        self.pending = pending
        self.stats = stats

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Pass a MAHSM span on to the batch processor, unless a replay made it."""
        # A span a replay remakes may end during the replay, unexported and without `on_end`:
        # the inner processor (Langfuse's keeps a record per started span until its end)
        # never hears of it, so nothing is left behind per replay.
        if is_mahsm_span(span) and not _replaying():
            self.inner.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        """Queue a MAHSM span for export, or drop and count it when the queue is full."""
        if not is_mahsm_span(span):
            return
        if not self.pending.acquire():
            self.stats.add(dropped=1)
            return
        self.inner.on_end(span)

    def shutdown(self) -> None:
        """Shut the batch processor down (exporting what it holds)."""
        self.inner.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter or processor, waiting at most `timeout_millis`."""
        return self.inner.force_flush(timeout_millis)


def _replaying() -> bool:
    return workflow.in_workflow() and workflow.unsafe.is_replaying_history_events()
