"""Finding a `transform` step's function: an entry point by name, or an import path.

A transform is a plain Python function taking one dict (its rendered `args`, or every input
and earlier output by name) and returning a JSON value. Register one either as an entry point
in the group `mahsm.transforms` (`shape = "mypkg.steps:shape"`, used as `function: shape`) or
name it by import path (`function: mypkg.steps.shape`), from a package allowed by
`MAHSM_CODE_MODULES` (`mahsm.code_imports`). Import paths are looked up from the process's
working directory too, so `examples.pipelines.shape_reply` works from a checkout.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from mahsm.code_imports import CodeNotAllowed, import_allowed

ENTRY_POINT_GROUP = "mahsm.transforms"

Transform = Callable[[dict[str, Any]], Any]


class TransformNotFound(LookupError):
    """The name is neither a registered entry point nor an importable function."""


@cache
def resolve_transform(name: str) -> Transform:
    """The function named `name`; raises `TransformNotFound` saying how to register it."""
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name == name:
            return _callable(point.load(), name)
    module_name, _, attribute = name.rpartition(".")
    if not module_name:
        raise TransformNotFound(
            f"transform '{name}' is not registered; use an import path (package.module.function)"
            f" or an entry point in the group '{ENTRY_POINT_GROUP}'"
        )
    try:
        module = import_allowed(module_name)
    except CodeNotAllowed as error:
        raise TransformNotFound(f"transform '{name}': {error}") from None
    except ImportError as error:
        raise TransformNotFound(
            f"transform '{name}': cannot import module '{module_name}' ({error}); install it"
            " where the worker and the API run, or start them from the directory holding it"
        ) from None
    if not hasattr(module, attribute):
        raise TransformNotFound(f"transform '{name}': module '{module_name}' has no '{attribute}'")
    return _callable(getattr(module, attribute), name)


def transform_problem(name: str) -> str | None:
    """Why `name` cannot be used as a transform, or None (for `validate_pipeline`)."""
    try:
        resolve_transform(name)
    except TransformNotFound as error:
        return str(error)
    return None


def _callable(value: object, name: str) -> Transform:
    if not callable(value):
        raise TransformNotFound(f"transform '{name}' is not a function")
    return value
