"""One OTLP receiver per session, and this process's tracing pointed at it through Langfuse.

OpenTelemetry has one tracer provider per process, so tracing is configured once, for the
session, with the Langfuse variables naming the receiver (canary keys: they must never
appear in a span).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from mahsm import tracing
from tests.observability.otlp_receiver import OtlpReceiver

LANGFUSE_PUBLIC = "pk-lf-canarypublic0001"
LANGFUSE_SECRET = "sk-lf-canarysecret0002"
CANARIES = {
    "OPENAI_API_KEY": "sk-canaryopenai00000003",
    "ANTHROPIC_API_KEY": "sk-ant-canaryanthropic0004",
}
MAHSM_API_KEY = "mahsmcanarykey0005"


@pytest.fixture(scope="session")
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """The receiver, and tracing configured to export to it through the Langfuse SDK.

    The Langfuse keys are given, not put in the environment: other tests share the process.
    """
    receiver = OtlpReceiver()
    receiver.start()
    configured = tracing.configure_tracing(
        service_name="mahsm-test",
        env=tracing.TracingEnv(
            langfuse_public_key=SecretStr(LANGFUSE_PUBLIC),
            langfuse_secret_key=SecretStr(LANGFUSE_SECRET),
            langfuse_host=receiver.url,
        ),
    )
    assert configured.enabled and configured.destination == f"langfuse {receiver.url}"
    yield receiver
    configured.flush(10)  # the receiver outlives every span of the session's tracing tests
    receiver.stop()


@pytest.fixture
def canary_env(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Provider keys and a MAHSM API key in the environment; returns every canary value."""
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MAHSM_API_KEYS", f"{MAHSM_API_KEY}:alice")
    return all_canaries()


def all_canaries() -> list[str]:
    """Every secret value this session holds."""
    return [LANGFUSE_PUBLIC, LANGFUSE_SECRET, MAHSM_API_KEY, *CANARIES.values()]
