"""Secrets are removed by value (what this process holds) and by shape (what keys look like)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from mahsm.redaction import (
    REDACTED,
    known_secrets,
    redact_output,
    redact_text,
    register_settings,
    secrets_of_environment,
)
from mahsm.settings import Settings


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        # no word boundary before the key: the provider error that leaked
        ("Error: invalid_key_sk-proj-Abc123def456ghi789", "sk-proj-Abc123def456ghi789"),
        ("groq key gsk_0123456789abcdefABCDEFghij rejected", "gsk_0123456789abcdefABCDEFghij"),
        ("google AIzaSyA-1234567890abcdefghijklmnopqrs0", "AIzaSyA-1234567890abcdefghijklmnopqrs0"),
        ("invalid api key 0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef"),
        ("token:DEADBEEFdeadbeef0123456789abcdef01", "DEADBEEFdeadbeef0123456789abcdef01"),
        ("sent Bearer abc.def-123_456", "abc.def-123_456"),
        ("{'Authorization': 'Token 5ecr3t-t0ken-value'}", "5ecr3t-t0ken-value"),
        ("authorization=Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        (
            "ghp_0123456789abcdefghijklmnopqrstuvwxyz pushed",
            "ghp_0123456789abcdefghijklmnopqrstuvwxyz",
        ),
    ],
)
def test_secret_shapes_are_redacted(text: str, secret: str) -> None:
    redacted = redact_text(text)
    assert secret not in redacted and REDACTED in redacted


@pytest.mark.parametrize(
    "text",
    [
        "a basic understanding of bearer bonds",
        "task task-1 finished; desk-lamp-12345678 ordered",
        "blob 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef not found",
        "used 120 tokens=120 of max_tokens: 4096",
    ],
)
def test_prose_and_ids_are_kept(text: str) -> None:
    assert redact_text(text) == text


def test_the_exact_values_of_the_environment_are_redacted_wherever_they_appear(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {
        "OPENAI_API_KEY": "plain-value-no-shape-1",
        "ANTHROPIC_API_KEY": "plain-value-no-shape-2",
        "BILLING_CLIENT_SECRET": "plain-value-no-shape-3",
        "GITHUB_TOKEN": "plain-value-no-shape-4",
        "REDIS_PASSWORD": "plain-value-no-shape-5",
        "LANGFUSE_PUBLIC_KEY": "plain-value-no-shape-6",
        "MAHSM_API_KEYS": "plain-value-no-shape-7:alice,plain-value-no-shape-8:bob",
        "MAHSM_DATABASE_URL": "postgresql://mahsm:plain%2Fvalue-9@db:5432/mahsm",
        "SHORT_TOKEN": "true",  # too short to be told from a word: kept
        "MAX_TOKENS": "4096",
        "HOME": "/home/plain-value-no-shape",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    found = secrets_of_environment(env)
    assert found == {f"plain-value-no-shape-{i}" for i in range(1, 9)} | {"plain/value-9"}
    assert found <= known_secrets()
    glued = "x".join(sorted(found)) + " plain%2Fvalue-9"
    for redact in (redact_text, redact_output):
        redacted = redact(glued)
        assert "plain-value" not in redacted and "plain%2Fvalue" not in redacted
    assert redact_text("SHORT_TOKEN is true") == "SHORT_TOKEN is true"


def test_secrets_from_settings_read_from_a_file_are_registered() -> None:
    settings = Settings(
        _env_file=None,
        database_url=SecretStr("postgresql://u:from-dotenv-pw-123@db/x"),
        temporal_api_key=SecretStr("from-dotenv-temporal-key"),
        api_keys={"from-dotenv-api-key": "alice"},
    )
    register_settings(settings)
    text = "from-dotenv-pw-123 from-dotenv-temporal-key from-dotenv-api-key"
    assert redact_output(text) == " ".join([REDACTED] * 3)


def test_output_keeps_data_that_only_looks_like_a_secret() -> None:
    """Agents write code and documents: the loose shapes are for logs and errors only."""
    code = 'api_key = os.environ["API_KEY"]  # password: see vault; Bearer 1234567890'
    assert redact_output(code) == code
    assert redact_output("key sk-proj-Abc123def456ghi789") == f"key {REDACTED}"


def test_secrets_follow_the_environment_as_it_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    # known_secrets caches its environment scan; a changed environment must not be missed.
    assert redact_text("value rotated-key-0001") == "value rotated-key-0001"
    monkeypatch.setenv("ROTATING_API_KEY", "rotated-key-0001")
    assert redact_text("value rotated-key-0001") == "value [REDACTED]"
    monkeypatch.setenv("ROTATING_API_KEY", "rotated-key-0002")
    assert redact_text("value rotated-key-0001") == "value rotated-key-0001"
    assert redact_text("value rotated-key-0002") == "value [REDACTED]"
    monkeypatch.delenv("ROTATING_API_KEY")
    assert redact_text("value rotated-key-0002") == "value rotated-key-0002"
