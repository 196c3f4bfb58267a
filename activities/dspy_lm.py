"""`MahsmLM`: a `dspy.BaseLM` that makes DSPy's LM calls through MAHSM.

It lives with the activities because outside a workflow it calls the provider layer
(`mahsm.activities.llm`) in the process.

Inside a workflow the runner gives it a `call` that runs each LM call as its own
`llm_complete` activity (`mahsm.workflows.dspy_steps`), so a crashed worker resumes without
repeating a finished call. Outside a workflow (a notebook, a script) it calls the provider
layer directly (`ProviderRegistry`, pricing), so the same program runs unchanged.

It overrides `acall` and `__call__` rather than `forward`: `BaseLM.acall` hands work to a
thread (`asyncio.to_thread`), which a workflow's event loop does not allow, and
`BaseLM`'s response recording reads the clock and makes uuids, which workflow code must
not. DSPy's cache is never used (Temporal's history is the memory).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any

import dspy

from mahsm.activities.llm.errors import LLMCallError
from mahsm.activities.llm.pricing import cost
from mahsm.activities.llm.provider import CallContext, PricedProvider
from mahsm.activities.llm.registry import ProviderRegistry
from mahsm.contracts.llm import ChatMessage, LLMPurpose, LLMRequest, LLMResponse
from mahsm.contracts.pipeline import ModelChoice, model_chain
from mahsm.contracts.task import Usage
from mahsm.settings import Settings, load_settings

LMCall = Callable[[LLMRequest], Awaitable[LLMResponse]]
"""Runs one LLM call (in a workflow: as an activity)."""

DEFAULT_MAX_TOKENS = 4096


class MahsmLM(dspy.BaseLM):
    """DSPy's LM, served by MAHSM's providers.

    Args:
        model: 'provider/model', or a fallback chain (first one serves; in a workflow the
            rest are tried on retryable errors).
        temperature: Sampling temperature (None: the provider's default).
        max_tokens: Most output tokens per call.
        call: Runs each call; None calls the provider directly (outside a workflow).
        purpose: Recorded on each request; scripted scenarios may match on it.
        task_id: Set on each request (the task it belongs to).
        subtask_id: Set on each request (the step it belongs to).
        settings: Outside a workflow, the settings providers are built from (default: the
            environment's, `load_settings()`).
    """

    def __init__(
        self,
        model: ModelChoice,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        call: LMCall | None = None,
        purpose: LLMPurpose = LLMPurpose.STEP,
        task_id: str | None = None,
        subtask_id: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        chain = model_chain(model)
        super().__init__(
            model=chain[0],
            model_type="chat",
            temperature=temperature,
            max_tokens=max_tokens or DEFAULT_MAX_TOKENS,
            cache=False,
        )
        self.models = chain
        self.purpose = purpose
        self.task_id = task_id
        self.subtask_id = subtask_id
        self._call = call
        self._settings = settings
        self.usage = Usage()
        """Usage of every call made so far."""
        self.served_by: str | None = None
        """The model that served the last call."""
        self.detections: dict[str, int] = {}
        self.calls = 0

    def request(self, messages: list[dict[str, Any]], kwargs: dict[str, Any]) -> LLMRequest:
        """The MAHSM request for one of DSPy's calls."""
        options = {**self.kwargs, **kwargs}
        temperature = options.get("temperature")
        return LLMRequest(
            model=self.models[0],
            fallback=self.models[1:],
            purpose=self.purpose,
            messages=[_message(m) for m in messages],
            max_output_tokens=int(options.get("max_tokens") or DEFAULT_MAX_TOKENS),
            temperature=float(temperature) if temperature is not None else None,
            task_id=self.task_id,
            subtask_id=self.subtask_id,
        )

    async def acall(
        self,
        prompt: str | None = None,
        *,
        messages: list[dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """One LM call; returns DSPy's outputs (one text)."""
        if messages is None:
            messages = [{"role": "user", "content": prompt or ""}]
        request = self.request(messages, kwargs)
        if self._call is not None:
            response = await self._call(request)
        else:
            response = await complete(request, self._settings)
        self.calls += 1
        self.usage = self.usage + response.usage
        self.served_by = response.model
        for key, count in response.detections.items():
            self.detections[key] = self.detections.get(key, 0) + count
        return [response.content or ""]

    def __call__(
        self,
        prompt: str | None = None,
        *,
        messages: list[dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """DSPy's sync entry point (notebooks); a durable step always uses `acall`."""
        work = self.acall(prompt, messages=messages, **kwargs)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(work)
        # Called from inside a running loop (e.g. Jupyter): run on a loop of its own.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, work).result()

    def copy(self, **kwargs: Any) -> MahsmLM:
        """A copy with other defaults (DSPy's `lm.copy(temperature=...)`)."""
        new = MahsmLM(
            self.models,
            temperature=kwargs.pop("temperature", self.kwargs.get("temperature")),
            max_tokens=kwargs.pop("max_tokens", self.kwargs.get("max_tokens")),
            call=self._call,
            purpose=self.purpose,
            task_id=self.task_id,
            subtask_id=self.subtask_id,
            settings=self._settings,
        )
        new.kwargs.update(kwargs)
        return new


def _message(message: dict[str, Any]) -> ChatMessage:
    content = message.get("content")
    if isinstance(content, list):  # content parts: keep the text ones
        content = "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    role = message.get("role", "user")
    if role not in ("system", "user", "assistant"):
        role = "user"
    return ChatMessage(role=role, content=str(content) if content is not None else "")


# ---- calls outside any workflow (a notebook, a script, an optimization run) ----------------
# The same providers, prices and model ids as the worker's `llm_complete`, in this process:
# no Temporal, so no durability, middleware or shared circuit breakers (those live in the
# activity). A fallback chain is tried in order on retryable errors.

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
        response.usage.calls = 1
        return response
    assert last is not None
    raise last
