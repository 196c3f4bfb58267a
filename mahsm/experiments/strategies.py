"""Custom experiment strategies: a name that resolves to an async function run by the workflow.

Besides the built-in `round_robin`, `shadow` and `multi_branch`, an experiment's `strategy`
may name:

- a strategy registered in-process with `@register_strategy("name")` (the worker and the API
  must both import the registering module), or as an entry point in the group
  `mahsm.experiment_strategies` (`cascade = "mypkg.strategies:cascade"`);
- an import path (`examples.experiments.strategies.cascade`) under `MAHSM_CODE_MODULES`.

A strategy is workflow code: it gets a `BranchRunner` (the `ExperimentWorkflow`) and may only
create branches, run them (each is a durable child task) and decide from their results. It
must be deterministic (no I/O, clocks or randomness; `asyncio.gather` for concurrency is
fine), like any workflow code: replays re-run it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Protocol

from mahsm.code_imports import CodeNotAllowed, import_allowed

if TYPE_CHECKING:
    from mahsm.experiments.models import Branch, BranchRole, ExperimentRequest

ENTRY_POINT_GROUP = "mahsm.experiment_strategies"
BUILT_IN = ("multi_branch", "round_robin", "shadow")


class BranchRunner(Protocol):
    """What a strategy may do: the `ExperimentWorkflow` running it."""

    @property
    def request(self) -> ExperimentRequest:
        """The experiment (configs, dataset, metrics, inputs)."""
        ...

    def new_branch(self, index: int, *, row: int | None, role: BranchRole = "branch") -> Branch:
        """Record a pending branch of config `index` (on dataset row `row`)."""
        ...

    async def run_branch(
        self, branch: Branch, inputs: dict[str, object], *, shadow: bool = False
    ) -> None:
        """Run it as a child task, record its outcome and scores; never raises."""
        ...


StrategyFunction = Callable[[BranchRunner], Awaitable[None]]

_registered: dict[str, StrategyFunction] = {}


class StrategyNotFound(LookupError):
    """The name is no built-in, registered or importable strategy."""


def register_strategy(name: str) -> Callable[[StrategyFunction], StrategyFunction]:
    """Decorator: make `name` resolve to the decorated strategy function in this process."""
    if name in BUILT_IN:
        raise ValueError(f"'{name}' is a built-in strategy")

    def register(function: StrategyFunction) -> StrategyFunction:
        _registered[name] = function
        return function

    return register


def known_strategies() -> list[str]:
    """Built-in, registered and entry-point names, sorted (import paths are not listed)."""
    names = set(BUILT_IN) | set(_registered)
    names |= {point.name for point in entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(names)


def resolve_strategy(name: str) -> StrategyFunction:
    """The function of a custom strategy; raises `StrategyNotFound` naming the known ones."""
    if name in _registered:
        return _registered[name]
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name == name:
            return _checked(point.load(), name)
    module_name, _, attribute = name.rpartition(".")
    if module_name:
        try:
            module = import_allowed(module_name)
        except CodeNotAllowed as error:
            raise StrategyNotFound(f"strategy '{name}': {error}") from None
        except ImportError as error:
            raise StrategyNotFound(
                f"strategy '{name}': cannot import '{module_name}' ({error})"
            ) from None
        if hasattr(module, attribute):
            return _checked(getattr(module, attribute), name)
    raise StrategyNotFound(
        f"unknown strategy '{name}'; known: {', '.join(known_strategies())}. Register one with"
        f" @register_strategy, an entry point in '{ENTRY_POINT_GROUP}', or name an async"
        " function by import path (package.module.function, under MAHSM_CODE_MODULES)"
    )


def strategy_problem(name: str) -> str | None:
    """Why `name` is no usable strategy, or None."""
    if name in BUILT_IN:
        return None
    try:
        resolve_strategy(name)
    except StrategyNotFound as error:
        return str(error)
    return None


def _checked(value: object, name: str) -> StrategyFunction:
    if not callable(value):
        raise StrategyNotFound(f"strategy '{name}' is not a function")
    return value
