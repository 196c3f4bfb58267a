"""`estimate_plan`: a plan's expected calls, tokens, cost and duration, learned from Postgres."""

from __future__ import annotations

import asyncio

import asyncpg
from temporalio import activity

from mahsm.activities.llm.pricing import Price, price_of
from mahsm.activities.llm.provider import PricedProvider
from mahsm.activities.llm.registry import ProviderRegistry
from mahsm.contracts.estimate import EstimateInput, PlanEstimate
from mahsm.estimates.history import load_history
from mahsm.estimates.plan_estimate import estimate_plan
from mahsm.settings import Settings


class EstimateActivities:
    """Estimates plans from the worker's price table and the history in Postgres."""

    def __init__(
        self, *, pool: asyncpg.Pool, settings: Settings, registry: ProviderRegistry
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.registry = registry

    def _price(self, model: str) -> Price:
        """The price `llm_complete` charges for `model` (MAHSM_PRICES, the provider's, table)."""
        declared = None
        try:
            provider, name = self.registry.resolve(model)
            if isinstance(provider, PricedProvider):
                declared = provider.price(name)
        except Exception as error:  # noqa: BLE001 - an unknown provider prices from the table
            activity.logger.info("no provider price for %s: %s", model, error)
        return price_of(model, overrides=self.settings.prices, provider_price=declared)

    @activity.defn(name="estimate_plan")
    async def estimate_plan(self, request: EstimateInput) -> PlanEstimate:
        """Estimate `request.plan`; the figures come from finished subtasks, else defaults."""
        history = await load_history(self.pool)
        # Resolving a provider may import its SDK or read a scenario file: off the loop.
        price = await asyncio.to_thread(self._price, request.model)
        return estimate_plan(
            request.plan,
            model=request.model,
            history=history,
            price=price,
            max_iterations=request.max_iterations,
            max_parallel=request.max_parallel,
            plans=request.plans,
            spent_before=request.spent_before,
        )
