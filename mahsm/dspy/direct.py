"""LLM calls of a DSPy program run outside any workflow (a notebook, a script, a benchmark).

The same providers, prices and model ids as the worker's `llm_complete`, in this process:
no Temporal, so no durability, middleware or shared circuit breakers (those live in the
activity). A fallback chain is tried in order on retryable errors.
"""

from __future__ import annotations

import asyncio
from functools import cache

from mahsm.activities.llm.errors import LLMCallError
from mahsm.activities.llm.pricing import cost
from mahsm.activities.llm.provider import CallContext, PricedProvider
from mahsm.activities.llm.registry import ProviderRegistry
from mahsm.contracts.llm import LLMRequest, LLMResponse
from mahsm.settings import Settings, load_settings

_registries: dict[int, tuple[Settings, ProviderRegistry]] = {}


@cache
def _default_settings() -> Settings:
    return load_settings()


def _registry(settings: Settings | None) -> tuple[Settings, ProviderRegistry]:
    settings = settings if settings is not None else _default_settings()
    found = _registries.get(id(settings))
    if found is None or found[0] is not settings:
        found = _registries[id(settings)] = (settings, ProviderRegistry(settings))
    return found


async def complete(request: LLMRequest, settings: Settings | None = None) -> LLMResponse:
    """Run `request` on its model, then on each fallback model while errors are retryable."""
    used, registry = await asyncio.to_thread(_registry, settings)
    last: LLMCallError | None = None
    for model_id in [request.model, *request.fallback]:
        try:
            provider, model = await asyncio.to_thread(registry.resolve, model_id)
            response = await provider.complete(
                request.model_copy(update={"model": model_id}),
                model=model,
                context=CallContext(task_id=request.task_id, subtask_id=request.subtask_id),
            )
        except LLMCallError as error:
            if not error.retryable:
                raise
            last = error
            continue
        price = provider.price(model) if isinstance(provider, PricedProvider) else None
        response.usage.cost_usd = cost(
            model_id, response.usage, overrides=used.prices, provider_price=price
        )
        return response
    assert last is not None
    raise last
