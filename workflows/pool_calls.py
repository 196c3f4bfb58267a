"""A call on a capability pool's queue that moves to another pool when no worker takes it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from mahsm.workflows.pool_router import POOL_PICKUP_S, Need, PoolRouter
    from mahsm.workflows.task_calls import timeout_type

T = TypeVar("T")


async def on_pool(
    router: PoolRouter,
    subtask_id: str,
    need: Need,
    queue: str,
    call: Callable[[str, str], Awaitable[T]],
) -> tuple[T, str]:
    """Run `call(queue of the calls, id_suffix)`; when no worker took it, re-route and retry.

    The calls go where the router says pool `queue`'s calls go (`PoolRouter.calls_queue`).
    Returns the result and the pool that served it.
    """
    rerouted = 0
    while True:
        try:
            result = await call(router.calls_queue(queue), f".r{rerouted}" if rerouted else "")
        except ActivityError as error:
            if timeout_type(error) != TimeoutType.SCHEDULE_TO_START:
                raise
        else:
            if rerouted:  # a worker took it: the subtask no longer waits
                router.worked(subtask_id)
            return result, queue
        rerouted += 1
        queue = await router.replace(subtask_id, need, queue, POOL_PICKUP_S)
