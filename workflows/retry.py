"""Retry policies of the engine's activities: Temporal owns retrying, the SDKs' retries are off."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

# Transient LLM errors (429, 5xx, timeouts) back off up to a minute; `retry-after` from the
# provider overrides the interval. Non-retryable errors (401, 400...) fail at once.
LLM_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=10,
)

TOOL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
)

# The store must eventually succeed (e.g. across a Postgres restart): retry without a limit.
STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
)

# A worker killed mid-call is noticed after this long (the activity heartbeats at a third of
# it), so the call is retried elsewhere within ~15 s instead of a minute.
LLM_HEARTBEAT_S = 15.0


def llm_heartbeat_timeout(llm_timeout_s: float) -> timedelta:
    """Heartbeat timeout of an LLM call whose attempts may last `llm_timeout_s`."""
    return timedelta(seconds=min(LLM_HEARTBEAT_S, llm_timeout_s))
