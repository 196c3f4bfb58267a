"""What a middleware is: a class with optional hooks, a mode, and a way to count what it finds.

A middleware subclasses `Middleware` and overrides only the hooks it needs; each hook may be
a plain or an `async` method. The registry builds one instance per `name:mode` and sets its
`name` and `mode` before first use.
"""

from __future__ import annotations

from collections.abc import Awaitable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import ClassVar

from mahsm.contracts.llm import LLMRequest, LLMResponse
from mahsm.contracts.middleware import MiddlewareHook, RunInfo, StepError, StepInfo

LLM_HOOKS = ("before_llm_call", "after_llm_call")
RUN_HOOKS = tuple(hook.value for hook in MiddlewareHook)


class MiddlewareAbort(Exception):  # noqa: N818 - a decision, not an error of the middleware
    """Raised by a hook to stop the call (or run): it fails with `AbortedByMiddleware`.

    Args:
        reason: Why, in words safe to record: name what was found, never the text itself.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Middleware:
    """Base class of middleware; every hook is optional (the defaults do nothing).

    Class attributes:
        name: The registered name (set by the registry; a class registered from a module
            of `MAHSM_MIDDLEWARE_MODULES` must set it).
        modes: The modes it accepts, the first being the default; `()` accepts none.
        critical: When True, an unexpected exception in a hook fails the call (retryably);
            when False it is logged with the middleware's name and the call goes on.

    Instance attribute `mode` is the mode chosen by the name suffix (`pii:block`), or the
    default mode. Hooks run concurrently for concurrent calls: keep per-call data in locals.
    """

    name: str = ""
    modes: ClassVar[tuple[str, ...]] = ()
    critical: ClassVar[bool] = False

    def __init__(self) -> None:
        self.mode: str | None = self.modes[0] if self.modes else None

    @property
    def label(self) -> str:
        """`name:mode` (or `name`), as logs and errors show it."""
        return f"{self.name}:{self.mode}" if self.mode else self.name

    def before_llm_call(self, request: LLMRequest) -> LLMRequest | Awaitable[LLMRequest]:
        """Before the provider sees `request`: return it, changed or not."""
        return request

    def after_llm_call(
        self, request: LLMRequest, response: LLMResponse
    ) -> LLMResponse | Awaitable[LLMResponse]:
        """After the answer: return it, changed or not."""
        return response

    def on_run_start(self, run: RunInfo) -> None | Awaitable[None]:
        """When a run starts (in the `middleware_hook` activity)."""
        return None

    def on_run_end(self, run: RunInfo) -> None | Awaitable[None]:
        """When a run ends, whatever its status (in the `middleware_hook` activity)."""
        return None

    def on_step_error(self, step: StepInfo, error: StepError) -> None | Awaitable[None]:
        """When a step fails (in the `middleware_hook` activity)."""
        return None

    @classmethod
    def defines(cls, hook: str) -> bool:
        """Whether this class overrides `hook` (a hook left at the default is never run)."""
        return getattr(cls, hook) is not getattr(Middleware, hook)


@dataclass
class _Detections:
    middleware: str
    counts: dict[str, int] = field(default_factory=dict)


_current: ContextVar[_Detections | None] = ContextVar("mahsm_middleware_detections", default=None)


def detect(kind: str, count: int = 1) -> None:
    """Count `count` findings of `kind` for the running hook's middleware.

    They appear in `LLMResponse.detections` as `'<middleware>.<kind>'` and in the worker's
    log, never with the text found.

    Raises:
        RuntimeError: When called outside a hook run by MAHSM.
    """
    detections = _current.get()
    if detections is None:
        raise RuntimeError("detect() may only be called from a middleware hook")
    if count > 0:
        key = f"{detections.middleware}.{kind}"
        detections.counts[key] = detections.counts.get(key, 0) + count
