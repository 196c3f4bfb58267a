"""Tracing of one process: OpenTelemetry, exported to Langfuse or to any OTLP/HTTP endpoint.

Configured once per process (`configure_tracing`) from the process's own environment:

- `LANGFUSE_PUBLIC_KEY`, `LANGFUSE_SECRET_KEY` and `LANGFUSE_HOST`: spans go to Langfuse
  through the Langfuse SDK's span processor (OTLP/HTTP at `<host>/api/public/otel/v1/traces`);
- else `OTEL_EXPORTER_OTLP_ENDPOINT`: spans go to `<endpoint>/v1/traces` (OTLP/HTTP);
- else tracing is off: no tracer provider is installed, every span is OpenTelemetry's no-op
  span, and the Temporal plugin is not added.

Only MAHSM's spans are exported (instrumentation scopes `mahsm.*`), whatever other libraries
in the process emit. Export never blocks or fails a task: spans wait in a bounded queue
(`MAX_QUEUED_SPANS`) drained by a background thread; a span that finds the queue full, or
whose export fails (endpoint down, timeout), is dropped and counted (`ExportStats`, the
`mahsm_trace_spans_dropped_total` metric).

The tracer provider is Temporal's replay-safe one (`create_tracer_provider`): span ids made
in workflow code come from the workflow's deterministic random, and spans a replay ends are
not exported again (see docs/decisions.md).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from temporalio import workflow
from temporalio.contrib.opentelemetry import (
    OpenTelemetryPlugin,
    ReplaySafeTracerProvider,
    create_tracer_provider,
)
from temporalio.plugin import SimplePlugin

from mahsm import metrics
from mahsm.redaction import redact_output, register_secret

SCOPE_PREFIX = "mahsm"
"""Instrumentation scopes of MAHSM's tracers start with this; only those spans are exported."""
MAX_QUEUED_SPANS = 2048
"""Spans waiting for export; past this a span is dropped (and counted), never waited for.

The batch processors' own queue holds as many (OpenTelemetry's default, which Langfuse's
processor keeps), so it never drops a span this bound let through.
"""
EXPORT_TIMEOUT_S = 5
"""One export request's time limit; the export thread gives up on a batch after it."""
SCHEDULE_DELAY_MS = 1000


class TracingEnv(BaseSettings):
    """The standard, unprefixed variables of Langfuse and OpenTelemetry this process reads."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    langfuse_public_key: SecretStr | None = None
    langfuse_secret_key: SecretStr | None = None
    langfuse_host: str | None = None
    otel_exporter_otlp_endpoint: str | None = None


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


class _CountingExporter(SpanExporter):
    """Counts what the wrapped exporter sent and what it failed to send (dropped)."""

    def __init__(self, inner: SpanExporter, stats: ExportStats, pending: _Pending) -> None:
        self.inner = inner
        self.stats = stats
        self.pending = pending

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export([_redacted(span) for span in spans])
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
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def _clean(value: object) -> object:
    if isinstance(value, str):
        return redact_output(value)
    if isinstance(value, tuple | list):
        return tuple(redact_output(v) if isinstance(v, str) else v for v in value)
    return value


def _redacted(span: ReadableSpan) -> ReadableSpan:
    """`span` with the process's secrets removed from its name and attributes.

    The last line of defence, in the export thread: activities redact what they record, but
    workflow code cannot read the environment (the values to redact), and a task's text (its
    trace name) is the user's.
    """
    attributes = {k: _clean(v) for k, v in (span.attributes or {}).items()}
    return ReadableSpan(
        name=redact_output(span.name),
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


class _Pending:
    """Spans handed to the batch processor and not yet through the exporter."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        with self._lock:
            if self.count >= self.limit:
                return False
            self.count += 1
            return True

    def release(self, n: int) -> None:
        with self._lock:
            self.count = max(0, self.count - n)


class _BoundedMahsmProcessor(SpanProcessor):
    """MAHSM's spans into `inner` (a batch processor), dropping and counting past the bound."""

    def __init__(self, inner: BatchSpanProcessor, pending: _Pending, stats: ExportStats) -> None:
        self.inner = inner
        self.pending = pending
        self.stats = stats

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        # A span a replay remakes may end during the replay, unexported and without `on_end`:
        # the inner processor (Langfuse's keeps a record per started span until its end)
        # never hears of it, so nothing is left behind per replay.
        if is_mahsm_span(span) and not _replaying():
            self.inner.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        if not is_mahsm_span(span):
            return
        if not self.pending.acquire():
            self.stats.add(dropped=1)
            return
        self.inner.on_end(span)

    def shutdown(self) -> None:
        self.inner.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def _replaying() -> bool:
    return workflow.in_workflow() and workflow.unsafe.is_replaying_history_events()


def is_mahsm_span(span: ReadableSpan) -> bool:
    """Whether `span` was made by one of MAHSM's tracers (scope `mahsm` or `mahsm.*`)."""
    scope = span.instrumentation_scope
    name = scope.name if scope is not None else ""
    return name == SCOPE_PREFIX or name.startswith(SCOPE_PREFIX + ".")


@dataclass
class Tracing:
    """The tracing of this process: its provider (None when off) and export counters."""

    provider: ReplaySafeTracerProvider | None
    stats: ExportStats
    destination: str | None = None

    @property
    def enabled(self) -> bool:
        """Whether spans are recorded and exported."""
        return self.provider is not None

    def plugins(self) -> list[SimplePlugin]:
        """Temporal plugins to add to a client (context in headers, spans in workflows)."""
        return [OpenTelemetryPlugin()] if self.enabled else []

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Export what is queued, waiting at most `timeout_s`."""
        if self.provider is None:
            return True
        return self.provider.force_flush(int(timeout_s * 1000))


_current = Tracing(provider=None, stats=ExportStats())
_lock = threading.Lock()


def current() -> Tracing:
    """The tracing configured in this process (off until `configure_tracing`)."""
    return _current


LANGFUSE_TRACES_PATH = "/api/public/otel/v1/traces"
"""Langfuse's OpenTelemetry ingestion endpoint, under `LANGFUSE_HOST`."""


def _langfuse_exporter(host: str, public: str, secret: str) -> SpanExporter:
    """OTLP/HTTP to Langfuse with its authentication and ingestion headers."""
    from langfuse._version import __version__ as langfuse_version
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    token = base64.b64encode(f"{public}:{secret}".encode()).decode("ascii")
    return OTLPSpanExporter(
        endpoint=host + LANGFUSE_TRACES_PATH,
        headers={
            "Authorization": f"Basic {token}",
            "x-langfuse-sdk-name": "python",
            "x-langfuse-sdk-version": langfuse_version,
            "x-langfuse-public-key": public,
            "x-langfuse-ingestion-version": "4",
        },
        timeout=EXPORT_TIMEOUT_S,
    )


def _exporter_for(env: TracingEnv) -> tuple[SpanExporter | None, str | None, str | None]:
    """The exporter the environment asks for, where it sends, and Langfuse's public key."""
    keys = (env.langfuse_public_key, env.langfuse_secret_key)
    if all(k is not None and k.get_secret_value() for k in keys) and env.langfuse_host:
        public, secret = (k.get_secret_value() for k in keys if k is not None)
        register_secret(public, secret)
        host = env.langfuse_host.rstrip("/")
        return _langfuse_exporter(host, public, secret), f"langfuse {host}", public
    if env.otel_exporter_otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = env.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        return OTLPSpanExporter(endpoint=endpoint, timeout=EXPORT_TIMEOUT_S), endpoint, None
    return None, None, None


def configure_tracing(
    *, service_name: str, env: TracingEnv | None = None, exporter: SpanExporter | None = None
) -> Tracing:
    """Install this process's tracer provider once, from the environment (or `exporter`).

    Args:
        service_name: The OpenTelemetry `service.name` (`mahsm-worker`, `mahsm-api`).
        env: The Langfuse/OTLP variables; read from the environment when omitted.
        exporter: Export to this instead (tests, benchmarks); the environment is not read.

    Returns:
        The process's tracing; `enabled` is False when nothing is configured. A second call
        returns the first call's tracing: OpenTelemetry has one global provider per process.
    """
    global _current
    with _lock:
        if _current.enabled:
            return _current
        stats = ExportStats()
        destination: str | None = "custom exporter" if exporter is not None else None
        langfuse_public: str | None = None
        if exporter is None:
            exporter, destination, langfuse_public = _exporter_for(env or TracingEnv())
        if exporter is None:
            _current = Tracing(provider=None, stats=stats)
            return _current
        pending = _Pending(MAX_QUEUED_SPANS)
        counted = _CountingExporter(exporter, stats, pending)  # redacts, counts
        batch: BatchSpanProcessor
        if langfuse_public is not None:
            # The Langfuse SDK's processor: its span filter (MAHSM's scopes), the attributes it
            # propagates and marks for Langfuse's trace view, around MAHSM's exporter.
            from langfuse._client.span_processor import LangfuseSpanProcessor

            batch = LangfuseSpanProcessor(
                public_key=langfuse_public,
                secret_key="",  # the SDK builds no exporter of its own: one is given
                base_url="",
                span_exporter=counted,
                flush_interval=SCHEDULE_DELAY_MS / 1000,
                should_export_span=is_mahsm_span,
            )
        else:
            batch = BatchSpanProcessor(
                counted,
                max_queue_size=MAX_QUEUED_SPANS,
                schedule_delay_millis=SCHEDULE_DELAY_MS,
                export_timeout_millis=EXPORT_TIMEOUT_S * 1000,
            )
        provider = create_tracer_provider(resource=Resource.create({"service.name": service_name}))
        provider.add_span_processor(_BoundedMahsmProcessor(batch, pending, stats))
        trace.set_tracer_provider(provider)
        _current = Tracing(provider=provider, stats=stats, destination=destination)
        return _current


def current_trace_id() -> str | None:
    """The trace id (32 hex digits) of the current span, or None outside a recorded trace.

    An activity runs in its workflow's trace (Temporal headers carry the context), so the
    task projection records the task's trace id with it (the dashboard links to Langfuse).
    """
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
