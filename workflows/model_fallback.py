"""Serving one LLM call on a chain of models: the next model takes over from a failing one.

Each model is its own activity with `attempts` attempts (`LLM_RETRY`'s backoff). The next
model serves the call when one's retries are exhausted (provider errors, attempt timeouts)
or its circuit is open (`CircuitOpen`, rejected without a provider call). A non-retryable
error (a 4xx, a schema error), a cancellation, a pool that did not pick the call up, and the
call's total time running out end the chain as they would end a single call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

with workflow.unsafe.imports_passed_through():
    from mahsm.activities.llm.breaker import CIRCUIT_OPEN
    from mahsm.contracts.llm import LLMRequest, LLMResponse
    from mahsm.workflows.failures import failure_message
    from mahsm.workflows.retry import LLM_RETRY

Attempt = Callable[[LLMRequest, str, float, RetryPolicy], Awaitable[LLMResponse]]
"""Runs one model's activity: (request, activity-id suffix, seconds left, retry policy)."""


class ChainOutOfTime(Exception):
    """The call's total time ran out before the chain's next model could be tried."""


async def serve_on_chain(
    request: LLMRequest,
    *,
    attempt: Attempt,
    note: Callable[[str], None],
    ends_call: Callable[[ActivityError], bool],
    attempts: int,
    summary: str,
    total_s: float,
) -> LLMResponse:
    """Serve `request` on `request.model`, then on each of `request.fallback`, in order.

    Args:
        request: The call; `fallback` holds the models after `model`.
        attempt: Runs one model's activity; the k-th fallback model's id suffix is `.m<k>`.
        note: Logs an event of the task (a model failed, which model served).
        ends_call: Errors that end the call on any model (its time ran out, no worker took it).
        attempts: Attempts per model.
        summary: The call's name in errors.
        total_s: Time for the whole chain; an `ActivityError` that ran out of it propagates.

    Raises:
        ApplicationError: `LLMFallbackExhausted`, naming every model and why it failed.
        ActivityError: What ends a single call (see the module docstring).
    """
    models = [request.model, *request.fallback]
    retry = replace(LLM_RETRY, maximum_attempts=attempts)
    until = workflow.now() + timedelta(seconds=total_s)
    failed: list[tuple[str, str]] = []
    for k, model in enumerate(models):
        # Each model is told what follows it: with nothing left, an open circuit is waited
        # out (retried after its cool-down) instead of failing the call at once.
        single = request.model_copy(update={"model": model, "fallback": models[k + 1 :]})
        left_s = (until - workflow.now()).total_seconds()
        if left_s <= 0:
            raise ChainOutOfTime(f"{summary}: no time left for {model}")
        try:
            response = await attempt(single, f".m{k}" if k else "", left_s, retry)
        except ActivityError as error:
            for text in breaker_notes(error):
                note(text)
            reason = None if ends_call(error) else fallback_reason(error)
            if reason is None:
                raise
            failed.append((model, reason))
            if k + 1 < len(models):
                note(f"model {model} failed ({reason}); trying {models[k + 1]}")
            continue
        if failed:
            earlier = "; ".join(f"{m} failed: {why}" for m, why in failed)
            note(f"served by fallback model {model} after {earlier}")
        return response
    tried = "; ".join(f"{m}: {why}" for m, why in failed)
    raise ApplicationError(
        f"LLM call '{summary}' failed on every model of its chain: {tried}. Check those"
        " providers (the worker's OPENAI_BASE_URL / OPENAI_API_KEY / ANTHROPIC_API_KEY), add"
        " a model to the chain, or raise MAHSM_FALLBACK_ATTEMPTS",
        [{"model": m, "reason": why} for m, why in failed],
        type="LLMFallbackExhausted",
        non_retryable=True,
    )


def fallback_reason(error: ActivityError) -> str | None:
    """Why the chain's next model should serve a call that failed with `error`, or None."""
    cause = error.cause
    if isinstance(cause, ApplicationError) and cause.type == CIRCUIT_OPEN:
        return cause.message
    if error.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED:
        return f"retries exhausted: {failure_message(error)}"
    return None


def breaker_notes(error: ActivityError) -> list[str]:
    """Circuit transitions the failed attempt reported (`notes` in its error's details)."""
    cause = error.cause
    if not isinstance(cause, ApplicationError) or not cause.details:
        return []
    detail = cause.details[0]
    notes = detail.get("notes") if isinstance(detail, dict) else None
    return [str(n) for n in notes] if isinstance(notes, list) else []
