"""The `middleware_hook` activity: the run and step hooks of the chosen middleware.

Built once per worker, beside `LLMActivities`, from the same registry::

    middleware = MiddlewareRegistry.from_settings(settings)
    hooks = MiddlewareActivities(registry=middleware)
    Worker(client, task_queue=..., activities=[hooks.run_hook, ...])

and scheduled by `mahsm.workflows.middleware_hooks.run_hook` only when one of the chosen
middleware defines a run or step hook.
"""

from __future__ import annotations

from temporalio import activity

from mahsm.activities.llm.middleware.registry import MiddlewareRegistry
from mahsm.contracts.middleware import MiddlewareHookRequest, MiddlewareHookResult


class MiddlewareActivities:
    """Runs `on_run_start`, `on_run_end` and `on_step_error` of middleware.

    Args:
        registry: The worker's middleware (the one `LLMActivities` uses).
    """

    def __init__(self, *, registry: MiddlewareRegistry) -> None:
        self.registry = registry

    @activity.defn(name="middleware_hook")
    async def run_hook(self, request: MiddlewareHookRequest) -> MiddlewareHookResult:
        """Run `request.hook` on each of `request.middleware` defining it, in order.

        Raises:
            ApplicationError: `UnknownMiddleware` or `AbortedByMiddleware` (non-retryable),
                or `MiddlewareFailed` when a critical middleware raised (retryable).
        """
        chain = self.registry.chain(request.middleware)
        result = await chain.run_hook(request)
        activity.logger.info(
            "middleware %s ran: %s",
            request.hook.value,
            ", ".join(result.ran) or "none",
            extra={"hook": request.hook.value, "ran": result.ran, "failed": result.failed},
        )
        return result
