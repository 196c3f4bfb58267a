"""structlog, configured once per process: JSON in production, readable on a terminal.

A redaction processor removes secrets (the process's own secret values, and anything shaped
like an API key, token, password or Authorization header; see `mahsm.redaction`) from every
event before it is rendered.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog
from opentelemetry import trace
from temporalio import activity

from mahsm.redaction import REDACTED, redact_text

__all__ = [
    "REDACTED",
    "add_trace_ids",
    "bind_context",
    "configure_logging",
    "redact_secrets",
    "redact_text",
    "redact_value",
]

_SECRET_NAME = re.compile(
    r"(api[_-]?key|apikey|token(?!s)|secret|password|passwd|authorization|auth[_-]?header|"
    r"database_url|dsn|credential|private[_-]?key|cookie)",
    re.IGNORECASE,
)

_configured = False


def redact_value(key: str, value: Any) -> Any:
    """Redact `value` if `key` names a secret, recursing into mappings and sequences.

    Numbers and booleans are kept even under a secret-like name: they are counts and flags
    (`max_token`, `temporal_tls`), never credentials.
    """
    if (
        _SECRET_NAME.search(key)
        and value not in (None, "")
        and not isinstance(value, bool | int | float)
    ):
        return REDACTED
    if isinstance(value, Mapping):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(key, v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Structlog processor: redact every secret-named field and secret-shaped value."""
    for key in list(event_dict):
        event_dict[key] = redact_value(key, event_dict[key])
    return event_dict


def add_trace_ids(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Structlog processor: the ids that lead from a log line to its trace.

    The current span's `trace_id` and `span_id`, and in an activity the ids of its workflow
    (`task_id`, `workflow_id`, `activity`).
    """
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    if activity.in_activity():
        info = activity.info()
        workflow_id = info.workflow_id or ""
        event_dict.setdefault("workflow_id", workflow_id)
        event_dict.setdefault("activity", info.activity_type)
        if workflow_id.startswith("task-"):  # a child agent's id is `<task id>.<subtask>`
            event_dict.setdefault("task_id", workflow_id.split(".", 1)[0])
    return event_dict


def configure_logging(
    *, level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None, force: bool = False
) -> None:
    """Configure structlog and the stdlib root logger once per process.

    Args:
        level: Minimum level of the root logger, e.g. "INFO".
        fmt: "json", "console", or "auto" (JSON unless the stream is a terminal).
        stream: Where log lines go; standard error by default.
        force: Configure again even if this process already did (tests).
    """
    global _configured
    if _configured and not force:
        return
    _configured = True
    out = stream if stream is not None else sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
        redact_secrets,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=not force,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact_secrets,  # again: tracebacks are rendered into text just above
                renderer,
            ],
            # ExtraAdder renders `extra=` fields of stdlib loggers (Temporal's activity.logger).
            foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "openai", "anthropic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def bind_context(**fields: Any) -> None:
    """Attach correlation fields (task_id, workflow_id, activity) to every later log line."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in fields.items() if v is not None})
