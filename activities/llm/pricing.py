"""Prices of LLM calls, in USD per million input and output tokens.

Lookup order for a model id `provider/model`:

1. `Settings.prices` (`MAHSM_PRICES`), exact id, then the longest key that is a prefix of
   the id (so `openai/gpt-4o-mini` prices `openai/gpt-4o-mini-2024-07-18`), then `provider/*`;
2. the provider's own price (scripted scenarios declare theirs);
3. `DEFAULT_PRICES`, with the same matching;
4. otherwise 0.

`DEFAULT_PRICES` is a snapshot of public list prices; override it when they change.
"""

from __future__ import annotations

from collections.abc import Mapping

from mahsm.contracts.task import Usage

Price = tuple[float, float]
"""(USD per million input tokens, USD per million output tokens)."""

DEFAULT_PRICES: dict[str, Price] = {
    "scripted/*": (0.0, 0.0),
    # OpenAI
    "openai/gpt-4o": (2.50, 10.00),
    "openai/gpt-4o-mini": (0.15, 0.60),
    "openai/gpt-4.1": (2.00, 8.00),
    "openai/gpt-4.1-mini": (0.40, 1.60),
    "openai/gpt-4.1-nano": (0.10, 0.40),
    "openai/gpt-5": (1.25, 10.00),
    "openai/gpt-5-mini": (0.25, 2.00),
    "openai/gpt-5-nano": (0.05, 0.40),
    "openai/o3-mini": (1.10, 4.40),
    "openai/o4-mini": (1.10, 4.40),
    # Anthropic
    "anthropic/claude-3-5-haiku": (0.80, 4.00),
    "anthropic/claude-3-5-sonnet": (3.00, 15.00),
    "anthropic/claude-3-7-sonnet": (3.00, 15.00),
    "anthropic/claude-haiku-4-5": (1.00, 5.00),
    "anthropic/claude-sonnet-4": (3.00, 15.00),
    "anthropic/claude-sonnet-4-5": (3.00, 15.00),
    "anthropic/claude-opus-4": (15.00, 75.00),
    "anthropic/claude-opus-4-1": (15.00, 75.00),
    "anthropic/claude-opus-4-5": (5.00, 25.00),
}


def lookup(model_id: str, table: Mapping[str, Price]) -> Price | None:
    """The price of `model_id` in `table`: exact, longest prefix, then `provider/*`.

    Args:
        model_id: A `provider/model` id.
        table: Prices keyed by model id, prefix or `provider/*`.

    Returns:
        The price, or None when nothing in `table` matches.
    """
    if model_id in table:
        return table[model_id]
    prefixes = [key for key in table if not key.endswith("/*") and model_id.startswith(key)]
    if prefixes:
        return table[max(prefixes, key=len)]
    provider = model_id.split("/", 1)[0]
    return table.get(f"{provider}/*")


def price_of(
    model_id: str,
    *,
    overrides: Mapping[str, Price] | None = None,
    provider_price: Price | None = None,
) -> Price:
    """The price that applies to `model_id` (see the module docstring for the order).

    Args:
        model_id: A `provider/model` id.
        overrides: `Settings.prices`.
        provider_price: The provider's own price for this model, if it declares one.

    Returns:
        (USD per Mtok input, USD per Mtok output); (0, 0) when unknown.
    """
    if overrides:
        found = lookup(model_id, overrides)
        if found is not None:
            return found
    if provider_price is not None:
        return provider_price
    return lookup(model_id, DEFAULT_PRICES) or (0.0, 0.0)


def cost(
    model_id: str,
    usage: Usage,
    *,
    overrides: Mapping[str, Price] | None = None,
    provider_price: Price | None = None,
) -> float:
    """USD cost of `usage` on `model_id`, rounded to 1e-10.

    Args:
        model_id: A `provider/model` id.
        usage: Tokens of the call (its `cost_usd` is ignored).
        overrides: `Settings.prices`.
        provider_price: The provider's own price for this model, if it declares one.

    Returns:
        The cost in USD.
    """
    price_in, price_out = price_of(model_id, overrides=overrides, provider_price=provider_price)
    total = (usage.input_tokens * price_in + usage.output_tokens * price_out) / 1_000_000
    return round(total, 10)
