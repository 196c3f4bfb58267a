"""The provider protocol: what an LLM backend implements to serve `llm_complete`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from mahsm.contracts.llm import LLMRequest, LLMResponse


def _no_heartbeat(*_details: Any) -> None:
    """Heartbeat stand-in used outside an activity."""


@dataclass(frozen=True)
class CallContext:
    """Where a call comes from; providers use it for logs, idempotency and fault injection.

    Attributes:
        attempt: Temporal's attempt number of the activity (1 on the first try).
        workflow_id: Id of the calling workflow, when called from one.
        activity_id: Id of the activity within that workflow.
        task_id: MAHSM task the call belongs to, if any.
        subtask_id: MAHSM subtask the call belongs to, if any.
        heartbeat: Call this during long work (e.g. per streamed chunk) to report liveness.
        on_text: When set, someone may watch the call live: the provider should use its
            streaming API and pass each text delta of the answer here, in order (it never
            blocks). The returned `LLMResponse` must be the same as without streaming. When
            None, the provider makes its ordinary (non-streaming) call.
    """

    attempt: int = 1
    workflow_id: str | None = None
    activity_id: str | None = None
    task_id: str | None = None
    subtask_id: str | None = None
    heartbeat: Callable[..., None] = field(default=_no_heartbeat, repr=False, compare=False)
    on_text: Callable[[str], None] | None = field(default=None, repr=False, compare=False)


class LLMProvider(Protocol):
    """An LLM backend.

    A provider is built once per worker process (by the `ProviderRegistry`) and shared by
    concurrent calls, so `complete` must be safe to run concurrently. Credentials come from
    the worker's environment, never from the request.
    """

    async def complete(
        self, request: LLMRequest, *, model: str, context: CallContext
    ) -> LLMResponse:
        """Run one completion.

        Args:
            request: The call; every message's blob reference is already resolved into
                `content`.
            model: The model name: the part of `request.model` after `provider/`.
            context: Attempt number and correlation ids of the call.

        Returns:
            The answer with `usage.input_tokens` / `usage.output_tokens` filled; the activity
            fills `usage.cost_usd`.

        Raises:
            LLMCallError: Any failure, classified (see `mahsm.activities.llm.errors`).
        """
        ...


@runtime_checkable
class PricedProvider(Protocol):
    """Optional: a provider that knows its own prices (the scripted provider's scenarios)."""

    def price(self, model: str) -> tuple[float, float] | None:
        """USD per million (input, output) tokens for `model`, or None to use the table."""
        ...
