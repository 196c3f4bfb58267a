"""Redaction of secrets and the JSON rendering of structlog and stdlib log lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from mahsm.logging import REDACTED, bind_context, configure_logging, redact_text, redact_value


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9"),
        ("header Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        ("calling with key sk-proj-abcdefghijklmnop", "sk-proj-abcdefghijklmnop"),
        ("anthropic sk-ant-api03-abcdefghijkl", "sk-ant-api03-abcdefghijkl"),
        ("connect postgresql://mahsm:s3cr3t@db:5432/mahsm", "s3cr3t"),
        ("broker redis://:hunter22@cache:6379/0", "hunter22"),
        ("retrying with api_key=abc123xyz", "abc123xyz"),
        ('config {"password": "pa55word"}', "pa55word"),
    ],
)
def test_secret_shaped_text_is_redacted(text: str, secret: str) -> None:
    redacted = redact_text(text)
    assert secret not in redacted
    assert REDACTED in redacted


def test_text_without_secrets_is_unchanged() -> None:
    for text in (
        "task task-1 finished in 3 iterations",
        "http://127.0.0.1:8233/namespaces/default",
        "used 120 tokens=120 of max_tokens: 4096",
    ):
        assert redact_text(text) == text


def test_secret_named_fields_are_redacted_recursively() -> None:
    event = {
        "api_key": "k-123",
        "headers": {"Authorization": "Bearer abcdefgh", "X-Api-Key": "k", "accept": "json"},
        "database_url": "postgresql://u:p@h/db",
        "nested": [{"access_token": "t0k3n"}, {"client_secret": "s"}],
        "usage": {"input_tokens": 12, "output_tokens": 3},
        "temporal_tls": True,
    }
    redacted = {key: redact_value(key, value) for key, value in event.items()}
    assert redacted["api_key"] == REDACTED
    assert redacted["headers"] == {
        "Authorization": REDACTED,
        "X-Api-Key": REDACTED,
        "accept": "json",
    }
    assert redacted["database_url"] == REDACTED
    assert redacted["nested"] == [{"access_token": REDACTED}, {"client_secret": REDACTED}]
    # Counts and flags under secret-like names are not secrets.
    assert redacted["usage"] == {"input_tokens": 12, "output_tokens": 3}
    assert redacted["temporal_tls"] is True


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    configure_logging(level="INFO", fmt="json", stream=stream, force=True)
    yield stream
    structlog.contextvars.clear_contextvars()
    root.handlers[:], root.level = saved[0], saved[1]


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_structlog_lines_are_json_with_correlation_fields_and_no_secrets(
    json_log: io.StringIO,
) -> None:
    bind_context(task_id="task-42", workflow_id="task-42", activity=None)
    structlog.get_logger("mahsm.test").info(
        "calling provider", api_key="sk-live-abcdefghijk", model="openai/gpt-4o-mini"
    )
    (line,) = _lines(json_log)
    assert line["event"] == "calling provider"
    assert line["level"] == "info"
    assert line["logger"] == "mahsm.test"
    assert line["task_id"] == "task-42" and line["workflow_id"] == "task-42"
    assert "activity" not in line
    assert line["api_key"] == REDACTED
    assert line["model"] == "openai/gpt-4o-mini"
    assert "timestamp" in line
    assert "sk-live" not in json_log.getvalue()


def test_stdlib_lines_are_json_and_redacted(json_log: io.StringIO) -> None:
    logging.getLogger("some.library").warning(
        "request failed, Authorization: Bearer abcdefghijklmnop to postgresql://u:pw1234@h/db"
    )
    (line,) = _lines(json_log)
    assert line["level"] == "warning"
    assert line["logger"] == "some.library"
    assert "abcdefghijklmnop" not in str(line["event"])
    assert "pw1234" not in str(line["event"])
    assert REDACTED in str(line["event"])


def test_exceptions_are_rendered_into_the_json_line(json_log: io.StringIO) -> None:
    try:
        raise ValueError("token=abcdef123 rejected")
    except ValueError:
        structlog.get_logger("mahsm.test").exception("call failed")
    (line,) = _lines(json_log)
    assert "ValueError" in str(line["exception"])
