"""A third-party-style provider, offered through an entry point or `register()` in tests."""

from __future__ import annotations

import asyncio

from mahsm.activities.llm.provider import CallContext
from mahsm.contracts.llm import LLMRequest, LLMResponse
from mahsm.contracts.task import Usage
from mahsm.settings import Settings

BUILT: list[Settings] = []


class EchoProvider:
    """Echoes the last message; sleeps `delay_s` first (to exercise heartbeats and timeouts)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.contexts: list[CallContext] = []
        self.requests: list[LLMRequest] = []

    async def complete(
        self, request: LLMRequest, *, model: str, context: CallContext
    ) -> LLMResponse:
        self.contexts.append(context)
        self.requests.append(request)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        text = request.messages[-1].content or ""
        return LLMResponse(
            content=f"{model}: {text}",
            usage=Usage(input_tokens=1_000_000, output_tokens=2_000_000),
            model=request.model,
            finish_reason="stop",
        )


def make_provider(settings: Settings) -> EchoProvider:
    """Entry-point factory: records that it was built."""
    BUILT.append(settings)
    return EchoProvider()
