"""The `llm_complete` activity: one LLM call, with blobs resolved, heartbeats and cost.

What leaves the activity is safe to record: large content and tool-call arguments travel by
claim check (`mahsm.activities.llm.claim_check`), and the worker's secrets are redacted from the
answer and from every error (`mahsm.redaction`).

Built once per worker::

    llm = LLMActivities(settings=settings, blobs=BlobStore(pool))
    Worker(client, task_queue=..., activities=[llm.complete, ...])

and called from workflows with
`workflow.execute_activity_method(LLMActivities.complete, request, ...)`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable
from datetime import timedelta
from typing import TypeVar

import asyncpg
from opentelemetry.trace import Span
from temporalio import activity
from temporalio.exceptions import ApplicationError

from mahsm import metrics
from mahsm.activities import telemetry
from mahsm.activities.blobs import BlobStore
from mahsm.activities.llm.breaker import CircuitBreakers
from mahsm.activities.llm.claim_check import RESPONSE_INLINE_BUDGET, offload_response, resolve_refs
from mahsm.activities.llm.errors import LLMCallError, check_hint, timeout_error
from mahsm.activities.llm.middleware.chain import MiddlewareChain
from mahsm.activities.llm.middleware.registry import MiddlewareRegistry
from mahsm.activities.llm.pricing import cost
from mahsm.activities.llm.provider import CallContext, PricedProvider
from mahsm.activities.llm.registry import ProviderRegistry
from mahsm.activities.llm.token_stream import CallTextStream, TokenPublisher
from mahsm.activities.store import ProjectionWriter
from mahsm.activities.tools.registry import ToolRegistry, default_registry
from mahsm.contracts.llm import LLMPurpose, LLMRequest, LLMResponse
from mahsm.contracts.stream import TokenChunk
from mahsm.redaction import redact_output, redact_text, register_settings
from mahsm.settings import Settings

# A projection write carried by a call may delay the call's answer by at most this long.
PROJECTION_WAIT_S = 1.0
HEARTBEAT_EVERY_S = 2.0
"""Heartbeat period while a call is in flight: allows heartbeat timeouts of ~10 s."""
_TIMEOUT_MARGIN_S = 2.0
_T = TypeVar("_T")
_NAMES_A_CHECK = re.compile(r"\bcheck [A-Z][A-Z0-9_]{2,}")
"""A message that already says which setting to check ("check OPENAI_BASE_URL")."""


class LLMActivities:
    """The LLM activities of a worker; holds the provider registry and the blob store.

    Args:
        settings: The worker's settings (`llm_timeout_s`, `prices`, scripted scenario).
        blobs: Resolves `ChatMessage.content_ref`; None when the worker has no database,
            in which case a request carrying a reference fails non-retryably.
        registry: Providers to use; a `ProviderRegistry(settings)` when omitted.
        tools: The worker's tool catalogue, the one its `tool_execute` runs: a request's
            `tool_capabilities` are expanded from it. The default registry when omitted.
        projection: Writes the projection change a request carries; without it the change
            is reported unwritten and the workflow writes it later.
        breakers: The circuit breakers per model (`mahsm.activities.llm.breaker`); none
            when omitted.
        middleware: The middleware a request may name (`request.middleware`, else the
            worker default); `MiddlewareRegistry.from_settings(settings)` when omitted.
        tokens: Publishes the live text of running calls (`docs/llm.md`, "Live token
            streams"); none when omitted, and then providers make non-streaming calls.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        blobs: BlobStore | None,
        registry: ProviderRegistry | None = None,
        tools: ToolRegistry | None = None,
        projection: ProjectionWriter | None = None,
        breakers: CircuitBreakers | None = None,
        middleware: MiddlewareRegistry | None = None,
        tokens: TokenPublisher | None = None,
    ) -> None:
        self.settings = settings
        self.blobs = blobs
        self.registry = registry if registry is not None else ProviderRegistry(settings)
        self.tools = tools if tools is not None else default_registry()
        self.projection = projection
        self.breakers = breakers if breakers is not None else CircuitBreakers(None)
        self.middleware = (
            middleware if middleware is not None else MiddlewareRegistry.from_settings(settings)
        )
        self.tokens = tokens if settings.stream_tokens else None
        register_settings(settings)  # secrets read from a .env file are redacted too

    @activity.defn(name="llm_complete")
    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Run one LLM call.

        Args:
            request: The call; blob references in messages are resolved here.

        Returns:
            The provider's answer with `usage.cost_usd` filled.

        Raises:
            ApplicationError: `type="LLM<Kind>Error"` (see `mahsm.activities.llm.errors`),
                non-retryable for errors a retry cannot fix, with `next_retry_delay` when the
                provider sent `retry-after`; or a middleware's `UnknownMiddleware`,
                `AbortedByMiddleware` (non-retryable) or `MiddlewareFailed` (retryable).
        """
        with telemetry.llm_span(request) as span:
            response = await self._complete(request, span)
            telemetry.record_llm(span, request, response, content=self.settings.trace_content)
            return response

    async def _complete(self, request: LLMRequest, span: Span) -> LLMResponse:
        info = activity.info()
        started = time.monotonic()
        fields = {
            "model": request.model,
            "purpose": request.purpose.value,
            "attempt": info.attempt,
            "task_id": request.task_id,
            "subtask_id": request.subtask_id,
        }
        # An open circuit rejects the call here, before any provider call (`CircuitOpen`).
        admission = await self.breakers.admit(request.model, has_fallback=bool(request.fallback))
        if admission.probe:
            metrics.BREAKER_TRANSITIONS.labels(request.model, "half_open").inc()
        projection = (
            asyncio.ensure_future(self._write_projection(request))
            if request.projection is not None
            else None
        )
        try:
            chain = self.middleware.chain(request.middleware)  # unknown names fail here
            resolved = self._offer_tools(await resolve_refs(request, self.blobs))
            resolved = await chain.before_llm_call(resolved)  # may redact, or abort
            telemetry.record_prompt(span, resolved.messages, content=self.settings.trace_content)
            # Building a provider imports its SDK (seconds on a busy machine): off the loop,
            # the first time; a built one is taken without a thread hop.
            built = self.registry.resolve_built(request.model)
            provider, model = (
                built
                if built is not None
                else await self._heartbeating(
                    asyncio.to_thread(self.registry.resolve, request.model), request, info
                )
            )
            text = self._live_text(request, info, chain)
            context = CallContext(
                attempt=info.attempt,
                workflow_id=info.workflow_id,
                activity_id=info.activity_id,
                task_id=request.task_id,
                subtask_id=request.subtask_id,
                heartbeat=activity.heartbeat,
                on_text=text.feed if text is not None else None,
            )
            try:
                response = await self._heartbeating(
                    provider.complete(resolved, model=model, context=context), request, info
                )
            except BaseException:  # the attempt says it failed; a retry streams as attempt + 1
                if text is not None:
                    text.close(failed=True)
                raise
            if text is not None:
                text.close(failed=False)
            response = await chain.after_llm_call(resolved, response)  # adds detections
            price = provider.price(model) if isinstance(provider, PricedProvider) else None
            # A plan is parsed by the workflow: it stays inline up to the response budget.
            threshold = (
                RESPONSE_INLINE_BUDGET
                if request.purpose == LLMPurpose.PLAN
                else self._threshold_bytes()
            )
            response = await offload_response(
                _redacted(response), self.blobs, threshold_bytes=threshold
            )
        except LLMCallError as error:
            activity.logger.warning(
                "llm call failed: %s %s attempt %d: %s (%s)",
                request.model,
                request.purpose.value,
                info.attempt,
                error.kind,
                "retryable" if error.retryable else "not retryable",
                extra={
                    **fields,
                    "kind": error.kind,
                    "status": error.status,
                    "retryable": error.retryable,
                    "retry_after": error.retry_after,
                    "error": error.message,
                },
            )
            verdict = await self.breakers.failed(admission, error)
            if verdict.opened:
                metrics.BREAKER_TRANSITIONS.labels(request.model, "open").inc()
            failure = _to_application_error(error, request.model, verdict.notes)
            raise verdict.raised(failure, has_fallback=bool(request.fallback)) from None
        except ApplicationError:
            raise  # already safe to record, e.g. BlobTooLargeError
        except Exception as error:
            # A provider bug or an unexpected SDK error: its text reaches history, so redact it
            # and drop the exception chain; Temporal retries it.
            activity.logger.warning("llm call raised: %s", request.model, exc_info=True)
            raise ApplicationError(
                redact_text(f"{request.model}: {type(error).__name__}: {error}"),
                type="LLMUnexpectedError",
            ) from None
        response.usage.cost_usd = cost(
            request.model, response.usage, overrides=self.settings.prices, provider_price=price
        )
        response.usage.calls = 1  # summed into task usage: GET /usage counts calls
        activity.logger.info(
            "llm call done: %s %s attempt %d, %d+%d tokens, $%.6f",
            request.model,
            request.purpose.value,
            info.attempt,
            response.usage.input_tokens,
            response.usage.output_tokens,
            response.usage.cost_usd,
            extra={
                **fields,
                "input_tokens": response.usage.input_tokens,
                "output_tokens": response.usage.output_tokens,
                "cost_usd": response.usage.cost_usd,
                "tool_calls": len(response.tool_calls),
                "finish_reason": response.finish_reason,
                "duration_s": round(time.monotonic() - started, 3),
            },
        )
        closed = await self.breakers.succeeded(admission)
        if admission.probe and len(closed) > len(admission.notes):
            metrics.BREAKER_TRANSITIONS.labels(request.model, "closed").inc()
        response.notes += closed
        response.worker = _worker_identity()
        response.projection_written = await _settle(projection)
        return response

    def _live_text(
        self, request: LLMRequest, info: activity.Info, chain: MiddlewareChain
    ) -> CallTextStream | None:
        """The live text of this attempt, or None when nobody could watch it.

        Not streamed: calls outside a task, and calls whose output middleware may rewrite
        or block the answer (what it would withhold must not leak live).
        """
        if self.tokens is None or request.task_id is None:
            return None
        if any(m.defines("after_llm_call") for m in chain.middleware):
            return None
        identity = TokenChunk(
            task_id=request.task_id,
            subtask_id=request.subtask_id,
            workflow_id=info.workflow_id,
            activity_id=info.activity_id,
            call=f"{info.workflow_id}/{info.activity_id}",
            attempt=info.attempt,
            seq=0,
        )
        return CallTextStream(
            self.tokens, identity=identity, interval_s=self.settings.stream_interval_ms / 1000
        )

    def _offer_tools(self, request: LLMRequest) -> LLMRequest:
        """Add the catalogue's tools for `tool_capabilities`: the tools this worker runs.

        With `side_effects` false, tools that change the world are left out (and
        `tool_execute` refuses them).
        """
        tools = request.tools
        if request.tool_capabilities is not None:
            offered = {t.name for t in tools}
            catalogue = self.tools.specs_for(request.tool_capabilities)
            tools = [*tools, *(t for t in catalogue if t.name not in offered)]
        if not request.side_effects:  # e.g. a shadow run: the world is not to be changed
            tools = [t for t in tools if not self._changes_the_world(t.name)]
        if tools == request.tools:
            return request
        return request.model_copy(update={"tools": tools})

    def _changes_the_world(self, name: str) -> bool:
        registered = self.tools.get(name)
        return registered is not None and registered.side_effects

    async def _write_projection(self, request: LLMRequest) -> bool:
        """Write the carried projection change; a failure only leaves it to a later write."""
        assert request.projection is not None
        if self.projection is None:
            return False
        try:
            await self.projection.write(request.projection)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            activity.logger.warning(
                "projection write deferred: %s", type(error).__name__, extra={"error": str(error)}
            )
            return False
        return True

    def _threshold_bytes(self) -> int:
        return self.blobs.threshold_bytes if self.blobs else self.settings.claim_check_bytes

    async def _heartbeating(
        self, work: Awaitable[_T], request: LLMRequest, info: activity.Info
    ) -> _T:
        """Await `work`, heartbeating every `HEARTBEAT_EVERY_S` until it ends or time is up.

        The time is `llm_timeout_s`, and ends a little before Temporal's start-to-close
        timeout, so that the failure is ours and names the model and what to check.
        """
        interval = HEARTBEAT_EVERY_S
        if info.heartbeat_timeout:
            interval = min(interval, info.heartbeat_timeout.total_seconds() / 4)
        limit = self.settings.llm_timeout_s
        if info.start_to_close_timeout:
            budget = info.start_to_close_timeout.total_seconds()
            limit = min(limit, max(budget * 0.5, budget - _TIMEOUT_MARGIN_S))
        deadline = time.monotonic() + limit
        call = asyncio.ensure_future(work)
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise timeout_error(request.model, f"no answer within {limit:g} s")
                done, _ = await asyncio.wait({call}, timeout=min(interval, remaining))
                if done:
                    return call.result()
                activity.heartbeat()
        finally:
            if not call.done():
                call.cancel()


async def _settle(projection: asyncio.Future[bool] | None) -> bool:
    """Whether the carried projection change was written, waiting for it only briefly."""
    if projection is None:
        return False
    try:
        return await asyncio.wait_for(projection, timeout=PROJECTION_WAIT_S)
    except TimeoutError:
        return False


def _worker_identity() -> str | None:
    """Identity of the worker running this activity (None outside a worker, e.g. in tests)."""
    try:
        return activity.client().identity
    except RuntimeError:
        return None


def _redacted(response: LLMResponse) -> LLMResponse:
    """The answer without the worker's secrets (a provider may echo its key back)."""
    calls = [
        call.model_copy(update={"arguments": redact_output(call.arguments)})
        for call in response.tool_calls
    ]
    content = None if response.content is None else redact_output(response.content)
    return response.model_copy(update={"content": content, "tool_calls": calls})


def _to_application_error(
    error: LLMCallError, model_id: str, notes: list[str] | None = None
) -> ApplicationError:
    """The error as Temporal records it: naming the model and what to check, no secrets.

    `notes` (circuit-breaker transitions) end the message and are in the details, so the
    workflow can log them.
    """
    delay = (
        timedelta(seconds=error.retry_after)
        if error.retryable and error.retry_after is not None
        else None
    )
    message = error.message
    if not message.startswith(model_id):
        message = f"{model_id}: {message}"
    if "Fix:" not in message and not _NAMES_A_CHECK.search(message):
        message += f"; {check_hint(error.kind, model_id)}"
    for note in notes or []:
        message += f"; {note}"
    return ApplicationError(
        redact_text(message),
        {
            "kind": error.kind,
            "status": error.status,
            "retry_after": error.retry_after,
            **({"notes": [redact_text(n) for n in notes]} if notes else {}),
        },
        type=error.error_type,
        non_retryable=not error.retryable,
        next_retry_delay=delay,
    )
