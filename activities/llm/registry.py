"""Which provider serves a model id: `scripted/...`, `openai/...`, `anthropic/...` or a plugin.

Providers are built lazily, once per registry (the worker holds one registry for its whole
life), from factories that take the worker's `Settings`. Third-party providers plug in
without editing MAHSM, either by calling `register()` in the worker's start-up code or by
declaring an entry point in their package::

    [project.entry-points."mahsm.providers"]
    ollama = "my_package.provider:make_provider"   # make_provider(settings) -> LLMProvider

Precedence: `register()` > built-ins > entry points (a plugin cannot silently replace a
built-in; call `register()` to do that on purpose).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points

from mahsm.activities.llm.errors import LLMCallError
from mahsm.activities.llm.provider import LLMProvider
from mahsm.settings import Settings

ENTRY_POINT_GROUP = "mahsm.providers"

ProviderFactory = Callable[[Settings], LLMProvider]
"""Builds a provider from the worker's settings; called at most once per registry."""

_log = logging.getLogger(__name__)


def _scripted(settings: Settings) -> LLMProvider:
    from mahsm.activities.llm.scripted import ScriptedProvider

    return ScriptedProvider(settings=settings)


def _openai(settings: Settings) -> LLMProvider:
    from mahsm.activities.llm.openai_provider import OpenAIProvider

    return OpenAIProvider.from_settings(settings)


def _anthropic(settings: Settings) -> LLMProvider:
    from mahsm.activities.llm.anthropic_provider import AnthropicProvider

    return AnthropicProvider.from_settings(settings)


BUILTIN_FACTORIES: dict[str, ProviderFactory] = {
    "scripted": _scripted,
    "openai": _openai,
    "anthropic": _anthropic,
}


class ProviderRegistry:
    """Maps provider names to lazily built providers.

    Args:
        settings: Passed to every factory.
        load_entry_points: Also offer providers declared in the `mahsm.providers`
            entry-point group (loaded only when first used).
    """

    def __init__(self, settings: Settings, *, load_entry_points: bool = True) -> None:
        self._settings = settings
        self._factories: dict[str, ProviderFactory] = dict(BUILTIN_FACTORIES)
        self._entry_points: dict[str, EntryPoint] = {}
        self._instances: dict[str, LLMProvider] = {}
        self._lock = threading.Lock()
        if load_entry_points:
            for point in entry_points(group=ENTRY_POINT_GROUP):
                if point.name in self._factories:
                    _log.warning(
                        "entry point %s=%s ignored: %r is a built-in provider",
                        point.name,
                        point.value,
                        point.name,
                    )
                    continue
                self._entry_points[point.name] = point

    @property
    def names(self) -> list[str]:
        """Every provider name this registry can serve, sorted."""
        return sorted({*self._factories, *self._entry_points})

    def register(self, name: str, factory: ProviderFactory) -> None:
        """Offer a provider under `name`, replacing any built-in or plugin of that name.

        Args:
            name: The `provider` part of model ids it serves (lower case, `[a-z0-9_-]+`).
            factory: Called once, with the registry's settings, on first use.
        """
        with self._lock:
            self._factories[name] = factory
            self._entry_points.pop(name, None)
            self._instances.pop(name, None)

    def resolve(self, model_id: str) -> tuple[LLMProvider, str]:
        """The provider serving `model_id` and the model name to pass to it.

        Args:
            model_id: `provider/model`, e.g. `openai/gpt-4o-mini`.

        Returns:
            (provider, model name after the first `/`).

        Raises:
            LLMCallError: Non-retryable, when the id is malformed or names no known provider,
                or when building the provider failed with a classified error.
        """
        parsed = _provider_and_model(model_id)
        if parsed is None:
            raise LLMCallError(
                f"model id {model_id!r} is not 'provider/model'. Fix: use e.g. "
                f"'openai/gpt-4o-mini'; known providers: {', '.join(self.names)}",
                kind="bad_request",
                retryable=False,
            )
        name, model = parsed
        return self.provider(name), model

    def resolve_built(self, model_id: str) -> tuple[LLMProvider, str] | None:
        """`resolve`, when the provider is already built (no import, no I/O); else None."""
        parsed = _provider_and_model(model_id)
        if parsed is None:
            return None  # `resolve` says what is wrong with the id
        name, model = parsed
        instance = self._instances.get(name)
        return None if instance is None else (instance, model)

    def provider(self, name: str) -> LLMProvider:
        """The provider registered as `name`, built on first use.

        Raises:
            LLMCallError: Non-retryable `not_found` naming the known providers.
        """
        with self._lock:
            instance = self._instances.get(name)
            if instance is not None:
                return instance
            factory = self._factories.get(name)
            if factory is None and name in self._entry_points:
                factory = self._load_entry_point(name)
            if factory is None:
                raise LLMCallError(
                    f"unknown LLM provider {name!r}. Fix: use one of "
                    f"{', '.join(self.names)}, or install a package declaring a "
                    f"'{ENTRY_POINT_GROUP}' entry point named {name!r}",
                    kind="not_found",
                    retryable=False,
                )
            instance = factory(self._settings)
            self._instances[name] = instance
            return instance

    def _load_entry_point(self, name: str) -> ProviderFactory:
        point = self._entry_points[name]
        try:
            loaded = point.load()
        except Exception as error:  # any import failure of a third-party plugin
            raise LLMCallError(
                f"provider plugin {name!r} ({point.value}) failed to load: {error!r}. Fix: "
                f"check that its package is installed in the worker's environment",
                kind="not_found",
                retryable=False,
            ) from error
        if not callable(loaded):
            raise LLMCallError(
                f"provider plugin {name!r} ({point.value}) is not a factory. Fix: the entry "
                f"point must name a callable taking Settings and returning a provider",
                kind="bad_request",
                retryable=False,
            )
        factory: ProviderFactory = loaded
        self._factories[name] = factory
        return factory


def _provider_and_model(model_id: str) -> tuple[str, str] | None:
    """`provider/model` split in two; None when either part is missing."""
    name, sep, model = model_id.partition("/")
    return (name, model) if sep and name and model else None
