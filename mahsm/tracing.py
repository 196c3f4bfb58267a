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

Every task is traced unless OpenTelemetry's standard sampler variables say otherwise:
`OTEL_TRACES_SAMPLER=parentbased_traceidratio` with `OTEL_TRACES_SAMPLER_ARG=0.1` traces one
task in ten, each whole (the task span decides from its trace id, every span under it follows
its parent, activities through Temporal's headers), the same way when a worker replays it.
Metrics and usage count every task either way.

The tracer provider is Temporal's replay-safe one (built as `create_tracer_provider` does,
with one tracer per name: `mahsm.tracing_export`): span ids made in workflow code come from
the workflow's deterministic random, and spans a replay ends are not exported again (see
docs/decisions.md).
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from temporalio.contrib.opentelemetry import OpenTelemetryPlugin
from temporalio.plugin import SimplePlugin

from mahsm.redaction import register_secret
from mahsm.tracing_export import (
    BoundedMahsmProcessor,
    CachingTracerProvider,
    CountingExporter,
    ExportStats,
    PendingSpans,
    is_mahsm_span,
)

MAX_QUEUED_SPANS = 2048
"""Spans waiting for export; past this a span is dropped (and counted), never waited for.

The batch processors' own queue holds as many (OpenTelemetry's default, which Langfuse's
processor keeps), so it never drops a span this bound let through.
"""
EXPORT_TIMEOUT_S = 5
"""One export request's time limit; the export thread gives up on a batch after it."""
SCHEDULE_DELAY_MS = 5000
"""How long spans wait to be sent in one batch (OpenTelemetry's and Langfuse's default).

Each export request costs the worker ~3 ms of CPU: at 1 s a busy worker sent a request for
every ~3 tasks (docs/performance.md, "Tracing overhead")."""


class TracingEnv(BaseSettings):
    """The standard, unprefixed variables of Langfuse and OpenTelemetry this process reads."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    langfuse_public_key: SecretStr | None = None
    langfuse_secret_key: SecretStr | None = None
    langfuse_host: str | None = None
    otel_exporter_otlp_endpoint: str | None = None


@dataclass
class Tracing:
    """The tracing of this process: its provider (None when off) and export counters."""

    provider: CachingTracerProvider | None
    stats: ExportStats
    destination: str | None = None

    @property
    def enabled(self) -> bool:
        """Whether spans are recorded and exported."""
        return self.provider is not None

    @property
    def sampling(self) -> str | None:
        """OpenTelemetry's description of which traces are recorded (None when off)."""
        return None if self.provider is None else self.provider.sampler.get_description()

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
        pending = PendingSpans(MAX_QUEUED_SPANS)
        counted = CountingExporter(exporter, stats, pending)  # redacts, counts
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
        provider = CachingTracerProvider(Resource.create({"service.name": service_name}))
        provider.add_span_processor(BoundedMahsmProcessor(batch, pending, stats))
        trace.set_tracer_provider(provider)
        _current = Tracing(provider=provider, stats=stats, destination=destination)
        return _current


def left_out(parent: Span) -> bool:
    """Whether `parent` is in a trace the sampler left out, so no span under it is recorded.

    MAHSM's spans check it before making a child: a non-recording child would cost the same
    span machinery for nothing.
    """
    context = parent.get_span_context()
    return context.is_valid and not context.trace_flags.sampled


def current_trace_id() -> str | None:
    """The trace id (32 hex digits) of the current span, or None outside a recorded trace.

    A trace the sampler left out has an id but no spans: None too, so no link leads nowhere.

    An activity runs in its workflow's trace (Temporal headers carry the context), so the
    task projection records the task's trace id with it (the dashboard links to Langfuse).
    """
    context = trace.get_current_span().get_span_context()
    recorded = context.is_valid and context.trace_flags.sampled
    return format(context.trace_id, "032x") if recorded else None
