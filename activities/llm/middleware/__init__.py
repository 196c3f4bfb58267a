"""Middleware around every LLM call, and around runs and steps (docs/middleware.md).

Write one by subclassing `Middleware`, overriding the hooks you need, calling `detect` for
what it finds and raising `MiddlewareAbort` to stop a call; register it by entry point
(`mahsm.middleware`) or module (`MAHSM_MIDDLEWARE_MODULES`).
"""

from mahsm.activities.llm.middleware.base import Middleware, MiddlewareAbort, detect
from mahsm.activities.llm.middleware.chain import ABORTED, FAILED, MiddlewareChain
from mahsm.activities.llm.middleware.registry import (
    ENTRY_POINT_GROUP,
    UNKNOWN,
    MiddlewareConfigError,
    MiddlewareRegistry,
    middleware_problems,
)

__all__ = [
    "ABORTED",
    "ENTRY_POINT_GROUP",
    "FAILED",
    "UNKNOWN",
    "Middleware",
    "MiddlewareAbort",
    "MiddlewareChain",
    "MiddlewareConfigError",
    "MiddlewareRegistry",
    "detect",
    "middleware_problems",
]
