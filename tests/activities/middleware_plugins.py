"""Middleware used by the middleware tests; registered through `MAHSM_MIDDLEWARE_MODULES`."""

from __future__ import annotations

from mahsm.activities.llm.middleware import Middleware, MiddlewareAbort, detect
from mahsm.contracts.llm import ChatMessage, LLMRequest, LLMResponse
from mahsm.contracts.middleware import RunInfo, StepError, StepInfo

SEEN: list[tuple[str, object]] = []
"""What the hooks of `Audit` received, in order (the workers run in the test's process)."""


def _append_to_last(request: LLMRequest, text: str) -> LLMRequest:
    last = request.messages[-1]
    tagged = ChatMessage(role=last.role, content=f"{last.content}{text}")
    return request.model_copy(update={"messages": [*request.messages[:-1], tagged]})


class First(Middleware):
    """Tags the prompt on the way in and the answer on the way out."""

    name = "first"

    def before_llm_call(self, request: LLMRequest) -> LLMRequest:
        return _append_to_last(request, " >first")

    async def after_llm_call(self, request: LLMRequest, response: LLMResponse) -> LLMResponse:
        return response.model_copy(update={"content": f"{response.content} <first"})


class Second(Middleware):
    """Like `First`, async on the way in; with modes, and counts one finding per call."""

    name = "second"
    modes = ("loud", "quiet")

    async def before_llm_call(self, request: LLMRequest) -> LLMRequest:
        detect("seen")
        return _append_to_last(request, f" >second:{self.mode}")

    def after_llm_call(self, request: LLMRequest, response: LLMResponse) -> LLMResponse:
        return response.model_copy(update={"content": f"{response.content} <second"})


class Exploding(Middleware):
    """Raises unexpectedly before every call."""

    name = "exploding"

    def before_llm_call(self, request: LLMRequest) -> LLMRequest:
        raise RuntimeError("exploding middleware bug")


class CriticalExploding(Exploding):
    """Raises unexpectedly, and is critical."""

    name = "critical_exploding"
    critical = True


class Audit(Middleware):
    """Records every run and step hook."""

    name = "audit"

    async def on_run_start(self, run: RunInfo) -> None:
        SEEN.append(("on_run_start", run))

    def on_run_end(self, run: RunInfo) -> None:
        SEEN.append(("on_run_end", run))

    def on_step_error(self, step: StepInfo, error: StepError) -> None:
        SEEN.append(("on_step_error", (step, error)))


class Gatekeeper(Middleware):
    """Refuses every run at its start."""

    name = "gatekeeper"

    def on_run_start(self, run: RunInfo) -> None:
        raise MiddlewareAbort("runs are closed for maintenance")
