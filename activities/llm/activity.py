"""The `llm_complete` activity: one LLM call, with blobs resolved, heartbeats and cost.

Built once per worker::

    llm = LLMActivities(settings=settings, blobs=BlobStore(pool))
    Worker(client, task_queue=..., activities=[llm.complete, ...])

and called from workflows with
`workflow.execute_activity_method(LLMActivities.complete, request, ...)`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.blobs import BlobStore
from activities.llm.errors import LLMCallError, timeout_error
from activities.llm.pricing import cost
from activities.llm.provider import CallContext, LLMProvider, PricedProvider
from activities.llm.registry import ProviderRegistry
from activities.store import ProjectionWriter
from activities.tools.registry import ToolRegistry, default_registry
from mahsm.contracts.llm import LLMRequest, LLMResponse
from mahsm.settings import Settings

DEFAULT_HEARTBEAT_S = 10.0
# A projection write carried by a call may delay the call's answer by at most this long.
PROJECTION_WAIT_S = 1.0


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
    """

    def __init__(
        self,
        *,
        settings: Settings,
        blobs: BlobStore | None,
        registry: ProviderRegistry | None = None,
        tools: ToolRegistry | None = None,
        projection: ProjectionWriter | None = None,
    ) -> None:
        self.settings = settings
        self.blobs = blobs
        self.registry = registry if registry is not None else ProviderRegistry(settings)
        self.tools = tools if tools is not None else default_registry()
        self.projection = projection

    @activity.defn(name="llm_complete")
    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Run one LLM call.

        Args:
            request: The call; blob references in messages are resolved here.

        Returns:
            The provider's answer with `usage.cost_usd` filled.

        Raises:
            ApplicationError: `type="LLM<Kind>Error"` (see `activities.llm.errors`),
                non-retryable for errors a retry cannot fix, with `next_retry_delay` when the
                provider sent `retry-after`.
        """
        info = activity.info()
        started = time.monotonic()
        fields = {
            "model": request.model,
            "purpose": request.purpose.value,
            "attempt": info.attempt,
            "task_id": request.task_id,
            "subtask_id": request.subtask_id,
        }
        projection = (
            asyncio.ensure_future(self._write_projection(request))
            if request.projection is not None
            else None
        )
        try:
            resolved = self._offer_tools(await self._resolve_blobs(request))
            provider, model = self.registry.resolve(request.model)
            context = CallContext(
                attempt=info.attempt,
                workflow_id=info.workflow_id,
                activity_id=info.activity_id,
                task_id=request.task_id,
                subtask_id=request.subtask_id,
                heartbeat=activity.heartbeat,
            )
            response = await self._call(provider, resolved, model, context, info.heartbeat_timeout)
            price = provider.price(model) if isinstance(provider, PricedProvider) else None
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
            raise _to_application_error(error) from None
        response.usage.cost_usd = cost(
            request.model, response.usage, overrides=self.settings.prices, provider_price=price
        )
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
        response.worker = _worker_identity()
        response.projection_written = await _settle(projection)
        return response

    def _offer_tools(self, request: LLMRequest) -> LLMRequest:
        """Add the catalogue's tools for `tool_capabilities`: the tools this worker runs."""
        if request.tool_capabilities is None:
            return request
        offered = {t.name for t in request.tools}
        catalogue = self.tools.specs_for(request.tool_capabilities)
        extra = [t for t in catalogue if t.name not in offered]
        return request.model_copy(update={"tools": [*request.tools, *extra]})

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

    async def _resolve_blobs(self, request: LLMRequest) -> LLMRequest:
        if not any(m.content_ref is not None for m in request.messages):
            return request
        if self.blobs is None:
            raise LLMCallError(
                "a message carries a content_ref but this worker has no blob store. Fix: build "
                "LLMActivities with blobs=BlobStore(pool) on workers that run LLM calls",
                kind="bad_request",
                retryable=False,
            )
        messages = []
        for message in request.messages:
            if message.content_ref is not None:
                try:
                    text = await self.blobs.get_text(message.content_ref)
                except LookupError as error:
                    raise LLMCallError(
                        f"{error}; the message's claim check points at nothing. Fix: store the "
                        "blob before passing its reference",
                        kind="bad_request",
                        retryable=False,
                    ) from error
                message = message.model_copy(update={"content": text, "content_ref": None})
            messages.append(message)
        return request.model_copy(update={"messages": messages})

    async def _call(
        self,
        provider: LLMProvider,
        request: LLMRequest,
        model: str,
        context: CallContext,
        heartbeat_timeout: timedelta | None,
    ) -> LLMResponse:
        """Run the provider call, heartbeating until it ends or `llm_timeout_s` passes."""
        interval = (
            heartbeat_timeout.total_seconds() / 3 if heartbeat_timeout else DEFAULT_HEARTBEAT_S
        )
        deadline = time.monotonic() + self.settings.llm_timeout_s
        call = asyncio.ensure_future(provider.complete(request, model=model, context=context))
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise timeout_error(
                        request.model,
                        f"no answer within llm_timeout_s={self.settings.llm_timeout_s:g}s",
                    )
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


def _to_application_error(error: LLMCallError) -> ApplicationError:
    delay = (
        timedelta(seconds=error.retry_after)
        if error.retryable and error.retry_after is not None
        else None
    )
    return ApplicationError(
        error.message,
        {"kind": error.kind, "status": error.status, "retry_after": error.retry_after},
        type=error.error_type,
        non_retryable=not error.retryable,
        next_retry_delay=delay,
    )
