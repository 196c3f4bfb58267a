"""Middleware by name: built-ins, the `mahsm.middleware` entry points, and settings modules.

A name is `name` or `name:mode` (`pii:block`). Sources, in order, the first one wins:
built-ins (`pii`, `injection_guard`), `Middleware.register` calls, the entry-point group
`mahsm.middleware` (`audit = "mypkg.audit:AuditMiddleware"`), and every `Middleware`
subclass with a `name` defined in a module of `MAHSM_MIDDLEWARE_MODULES`. All are loaded when
the registry is built, so a worker knows at start which middleware define run hooks.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Iterable, Sequence
from functools import cache
from importlib.metadata import entry_points

from temporalio.exceptions import ApplicationError

from mahsm.activities.llm.middleware.base import RUN_HOOKS, Middleware
from mahsm.activities.llm.middleware.chain import Logger, MiddlewareChain
from mahsm.activities.llm.middleware.injection_guard import InjectionGuard
from mahsm.activities.llm.middleware.pii import PIIMiddleware
from mahsm.contracts.task import MIDDLEWARE_NAME_PATTERN
from mahsm.settings import Settings, SettingsError

ENTRY_POINT_GROUP = "mahsm.middleware"
UNKNOWN = "UnknownMiddleware"
"""Error type of a call naming middleware this worker does not have (non-retryable)."""
BUILTINS: tuple[type[Middleware], ...] = (PIIMiddleware, InjectionGuard)
_NAME = re.compile(MIDDLEWARE_NAME_PATTERN)
_log = logging.getLogger(__name__)


class MiddlewareConfigError(SettingsError):
    """A setting names middleware that cannot be loaded; the message names the setting."""


class MiddlewareRegistry:
    """Middleware classes by name, and one instance per `name:mode`, built on first use.

    Args:
        modules: Modules to import (`MAHSM_MIDDLEWARE_MODULES`); their `Middleware`
            subclasses with a `name` are registered.
        default: The worker default (`MAHSM_MIDDLEWARE`), used when a call names none.
        load_entry_points: Also load the `mahsm.middleware` entry points.

    Raises:
        MiddlewareConfigError: A module cannot be imported, or `default` names unknown
            middleware.
    """

    def __init__(
        self,
        *,
        modules: Sequence[str] = (),
        default: Sequence[str] = (),
        load_entry_points: bool = True,
    ) -> None:
        self._classes: dict[str, type[Middleware]] = {m.name: m for m in BUILTINS}
        self._broken: dict[str, str] = {}
        self._instances: dict[str, Middleware] = {}
        if load_entry_points:
            self._load_entry_points()
        for module in modules:
            self._load_module(module)
        self.default = list(default)
        problems = self.problems(self.default)
        if problems:
            raise MiddlewareConfigError(f"MAHSM_MIDDLEWARE: {'; '.join(problems)}")

    @classmethod
    def from_settings(cls, settings: Settings) -> MiddlewareRegistry:
        """The registry a worker uses: `MAHSM_MIDDLEWARE_MODULES` and `MAHSM_MIDDLEWARE`."""
        return cls(modules=settings.middleware_modules, default=settings.middleware)

    @property
    def names(self) -> list[str]:
        """Every registered middleware name, sorted."""
        return sorted(self._classes)

    def register(self, middleware: type[Middleware], *, name: str | None = None) -> None:
        """Offer `middleware` under `name` (default: its `name`), replacing any of that name."""
        key = name or middleware.name
        if not _NAME.fullmatch(key) or ":" in key:
            raise ValueError(f"middleware name {key!r} must match [a-z][a-z0-9_]{{0,63}}")
        self._classes[key] = middleware
        self._broken.pop(key, None)
        self._instances = {k: v for k, v in self._instances.items() if k.split(":")[0] != key}

    def hooked(self) -> list[str]:
        """Names of registered middleware that define a run or step hook, sorted."""
        return sorted(
            name for name, cls in self._classes.items() if any(cls.defines(h) for h in RUN_HOOKS)
        )

    def problems(self, names: Iterable[str]) -> list[str]:
        """Why each unusable name cannot be used (empty when all are usable)."""
        found = []
        for full in names:
            name, _, mode = full.partition(":")
            if not _NAME.fullmatch(full):
                found.append(f"{full!r} is not a middleware name (name or name:mode)")
            elif name in self._broken:
                found.append(f"middleware '{name}' failed to load: {self._broken[name]}")
            elif name not in self._classes:
                found.append(
                    f"unknown middleware '{name}'; known: {', '.join(self.names)}. Fix: use"
                    f" one of those, or register it (entry point group '{ENTRY_POINT_GROUP}',"
                    " or a module in MAHSM_MIDDLEWARE_MODULES)"
                )
            elif mode and mode not in self._classes[name].modes:
                modes = self._classes[name].modes
                found.append(
                    f"middleware '{name}' has no mode '{mode}'; its modes: "
                    + (", ".join(modes) if modes else "none (use the bare name)")
                )
        return found

    def chain(
        self, names: Sequence[str] | None, *, logger: Logger | None = None
    ) -> MiddlewareChain:
        """The middleware to run for `names` (None: the worker default), in order.

        Raises:
            ApplicationError: Non-retryable `UnknownMiddleware` naming the bad names and the
                known ones.
        """
        chosen = self.default if names is None else list(names)
        problems = self.problems(chosen)
        if problems:
            raise ApplicationError(
                "; ".join(problems), {"middleware": chosen}, type=UNKNOWN, non_retryable=True
            )
        return MiddlewareChain([self._instance(n) for n in chosen], logger=logger)

    def _instance(self, full: str) -> Middleware:
        instance = self._instances.get(full)
        if instance is None:
            name, _, mode = full.partition(":")
            instance = self._classes[name]()
            instance.name = name  # the registered name (an entry point's may differ)
            instance.mode = mode or instance.mode
            self._instances[full] = instance
        return instance

    def _add(self, name: str, value: object, source: str) -> None:
        if name in self._classes:
            _log.warning("middleware %s from %s ignored: the name is taken", name, source)
        elif not (isinstance(value, type) and issubclass(value, Middleware)):
            self._broken[name] = f"{source} is not a subclass of Middleware"
        elif not _NAME.fullmatch(name) or ":" in name:
            self._broken[name] = f"{source}: the name must match [a-z][a-z0-9_]{{0,63}}"
        else:
            self._classes[name] = value

    def _load_entry_points(self) -> None:
        for point in entry_points(group=ENTRY_POINT_GROUP):
            try:
                loaded = point.load()
            except Exception as error:  # any import failure of a third-party plugin
                self._broken[point.name] = (
                    f"entry point {point.value} raised {error!r}; check that its package is"
                    " installed in the worker's environment"
                )
                continue
            self._add(point.name, loaded, f"entry point {point.value}")

    def _load_module(self, module_name: str) -> None:
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise MiddlewareConfigError(
                f"MAHSM_MIDDLEWARE_MODULES: cannot import {module_name!r} ({error}); install it"
                " where the worker and the API run"
            ) from None
        found = [
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, Middleware)
            and value.__module__ == module.__name__
            and value.name
        ]
        if not found:
            raise MiddlewareConfigError(
                f"MAHSM_MIDDLEWARE_MODULES: {module_name!r} defines no Middleware subclass"
                " with a `name`"
            )
        for value in found:
            self._add(value.name, value, f"{module_name}.{value.__name__}")


@cache
def _registry_for(modules: tuple[str, ...]) -> MiddlewareRegistry:
    return MiddlewareRegistry(modules=modules)


def middleware_problems(names: Iterable[str], *, modules: Sequence[str] = ()) -> list[str]:
    """Why each of `names` cannot be used; empty when all can (for a 422 at submit).

    Args:
        names: Middleware names as a task gives them (`pii`, `pii:block`).
        modules: `MAHSM_MIDDLEWARE_MODULES` of the submitting process.
    """
    return _registry_for(tuple(modules)).problems(names)
