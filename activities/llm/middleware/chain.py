"""Running chosen middleware in order: modify, abort, or fail in isolation.

`before_llm_call` runs in list order and `after_llm_call` in reverse order (the first
middleware is the outermost, as in a stack of wrappers). A `MiddlewareAbort` stops at once
with a non-retryable `AbortedByMiddleware`; any other exception is logged with the
middleware's name and skipped, unless the middleware is `critical`: then the call fails with
a retryable `MiddlewareFailed` (the hook may have met a passing fault, say of a service it
calls; Temporal's retry policy bounds the retries).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from mahsm.activities.llm.middleware.base import Middleware, MiddlewareAbort, _current, _Detections
from mahsm.contracts.llm import LLMRequest, LLMResponse
from mahsm.contracts.middleware import (
    MiddlewareHook,
    MiddlewareHookRequest,
    MiddlewareHookResult,
)

ABORTED = "AbortedByMiddleware"
"""Error type of a call or hook a middleware stopped (non-retryable)."""
FAILED = "MiddlewareFailed"
"""Error type of a call whose critical middleware raised (retryable)."""

_T = TypeVar("_T")
Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]


class MiddlewareChain:
    """The middleware of one call, in order, with what they detected and which failed.

    Args:
        middleware: Instances from `MiddlewareRegistry.chain`.
        logger: Where aborts, isolated failures and detections are logged (never the text
            found); the activity's logger by default.
    """

    def __init__(self, middleware: Sequence[Middleware], *, logger: Logger | None = None) -> None:
        self.middleware = list(middleware)
        self.detections: dict[str, int] = {}
        self.failed: list[str] = []
        self._logger: Logger = logger if logger is not None else activity.logger

    async def before_llm_call(self, request: LLMRequest) -> LLMRequest:
        """`request` as each middleware, in order, passes it on."""
        for middleware in self.middleware:
            if middleware.defines("before_llm_call"):
                changed = await self._call(
                    middleware, "before_llm_call", LLMRequest, middleware.before_llm_call, request
                )
                request = changed if changed is not None else request
        return request

    async def after_llm_call(self, request: LLMRequest, response: LLMResponse) -> LLMResponse:
        """`response` as each middleware, in reverse order, passes it on; detections added."""
        for middleware in reversed(self.middleware):
            if middleware.defines("after_llm_call"):
                changed = await self._call(
                    middleware,
                    "after_llm_call",
                    LLMResponse,
                    middleware.after_llm_call,
                    request,
                    response,
                )
                response = changed if changed is not None else response
        self.log_detections()
        if not self.detections:
            return response
        merged = dict(response.detections)
        for key, count in self.detections.items():
            merged[key] = merged.get(key, 0) + count
        return response.model_copy(update={"detections": merged})

    async def run_hook(self, request: MiddlewareHookRequest) -> MiddlewareHookResult:
        """Run `request.hook` on each middleware defining it, in order."""
        hook = request.hook
        if hook == MiddlewareHook.ON_STEP_ERROR:
            if request.step is None or request.error is None:
                raise ApplicationError(
                    "on_step_error needs `step` and `error` in MiddlewareHookRequest",
                    type="BadMiddlewareHookRequest",
                    non_retryable=True,
                )
            args: tuple[Any, ...] = (request.step, request.error)
        else:
            args = (request.run,)
        result = MiddlewareHookResult()
        for middleware in self.middleware:
            if middleware.defines(hook.value):
                method = getattr(middleware, hook.value)
                failures = len(self.failed)
                await self._call(middleware, hook.value, None, method, *args)
                target = result.failed if len(self.failed) > failures else result.ran
                target.append(middleware.label)
        self.log_detections()
        return result

    def log_detections(self) -> None:
        """One warning listing the counts, when anything was found."""
        if self.detections:
            listed = ", ".join(f"{k}={v}" for k, v in sorted(self.detections.items()))
            self._logger.warning(
                "middleware detections: %s", listed, extra={"detections": dict(self.detections)}
            )

    async def _call(
        self,
        middleware: Middleware,
        hook: str,
        expected: type[_T] | None,
        method: Any,
        *args: Any,
    ) -> _T | None:
        """Run one hook; None when it failed in isolation (or returns nothing)."""
        token = _current.set(_Detections(middleware.name, self.detections))
        try:
            result = method(*args)
            if inspect.isawaitable(result):
                result = await result
            if expected is not None and not isinstance(result, expected):
                raise TypeError(
                    f"{hook} returned {type(result).__name__}, expected {expected.__name__}"
                )
            return result  # type: ignore[no-any-return]
        except MiddlewareAbort as abort:
            self.log_detections()
            self._logger.warning(
                "middleware %s aborted in %s: %s",
                middleware.label,
                hook,
                abort.reason,
                extra={"middleware": middleware.label, "hook": hook},
            )
            raise ApplicationError(
                f"aborted by middleware '{middleware.label}' in {hook}: {abort.reason}",
                {"middleware": middleware.label, "hook": hook, "reason": abort.reason},
                type=ABORTED,
                non_retryable=True,
            ) from None
        except Exception as error:
            extra = {"middleware": middleware.label, "hook": hook, "error": type(error).__name__}
            if middleware.critical:
                self._logger.error(
                    "critical middleware %s raised %s in %s; the call fails",
                    middleware.label,
                    type(error).__name__,
                    hook,
                    exc_info=True,
                    extra=extra,
                )
                raise ApplicationError(
                    f"critical middleware '{middleware.label}' raised {type(error).__name__} in"
                    f" {hook}; the call is retried. Fix: see the worker log for"
                    f" '{middleware.label}', or make it non-critical",
                    {"middleware": middleware.label, "hook": hook},
                    type=FAILED,
                ) from None
            self._logger.warning(
                "middleware %s raised %s in %s; ignored (not critical)",
                middleware.label,
                type(error).__name__,
                hook,
                exc_info=True,
                extra=extra,
            )
            self.failed.append(middleware.label)
            return None
        finally:
            _current.reset(token)
