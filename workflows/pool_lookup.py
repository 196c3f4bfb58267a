"""Finding the capability pool of each subtask inside `TaskWorkflow`."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from mahsm.activities.engine import EngineActivities
    from mahsm.contracts.engine import PoolRequest
    from mahsm.contracts.task import Capability, Subtask
    from mahsm.queues import prefix_of
    from mahsm.workflows.failures import failure_message
    from mahsm.workflows.task_recorder import TaskRecorder

_LOOKUP_TIMEOUT = timedelta(seconds=10)
_WAIT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=1.5,
    maximum_interval=timedelta(seconds=5),
)


class PoolLookup:
    """Resolves capability sets to live pool queues, once per set per task.

    While no worker serves a set, the lookup is retried for `wait_s` seconds and every
    subtask waiting on it shows why in its `waiting_for`.
    """

    def __init__(self, *, recorder: TaskRecorder, wait_s: float) -> None:
        self._recorder = recorder
        self._wait_s = wait_s
        self._pools: dict[frozenset[Capability], str] = {}
        self._lookups: dict[frozenset[Capability], asyncio.Task[str]] = {}
        self._waiters: dict[frozenset[Capability], list[str]] = {}
        self._notes: dict[frozenset[Capability], str] = {}

    def cancel_all(self) -> None:
        """Stop lookups still in flight (the task is being cancelled)."""
        for lookup in self._lookups.values():
            lookup.cancel()

    async def queue_for(self, subtask: Subtask) -> str:
        """The queue of a live pool serving the subtask; waits (visibly) while none does.

        Subtasks that need the same capabilities share one lookup.
        """
        need = frozenset(subtask.required_capabilities)
        if need in self._pools:
            return self._pools[need]
        if not workflow.patched("shared-pool-lookup"):
            return await self._lookup(need, [subtask.id])
        lookup = self._lookups.get(need)
        if lookup is None:
            self._waiters[need] = []
            lookup = asyncio.create_task(self._lookup(need, self._waiters[need]))
            self._lookups[need] = lookup
        waiters = self._waiters[need]
        waiters.append(subtask.id)
        if need in self._notes:
            self._recorder.update_subtask(subtask.id, waiting_for=self._notes[need])
        try:
            return await asyncio.shield(lookup)
        except ActivityError:
            self._lookups.pop(need, None)  # a later subtask may try again
            raise
        finally:
            waiters.remove(subtask.id)

    async def _lookup(self, need: frozenset[Capability], waiters: list[str]) -> str:
        request = PoolRequest(
            queue_prefix=prefix_of(workflow.info().task_queue),
            capabilities=sorted(need),
        )
        try:
            choice = await workflow.execute_activity_method(
                EngineActivities.resolve_pool,
                request,
                start_to_close_timeout=_LOOKUP_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=1),
                summary="find pool: " + ",".join(request.capabilities),
            )
        except ActivityError as error:
            if is_cancelled_exception(error):
                raise asyncio.CancelledError() from error
            note = f"{failure_message(error)} (waiting up to {self._wait_s:g}s)"
            self._notes[need] = note
            for subtask_id in waiters:
                self._recorder.update_subtask(subtask_id, waiting_for=note)
            choice = await workflow.execute_activity_method(
                EngineActivities.resolve_pool,
                request,
                start_to_close_timeout=_LOOKUP_TIMEOUT,
                schedule_to_close_timeout=timedelta(seconds=self._wait_s),
                retry_policy=_WAIT_RETRY,
                summary="wait for pool: " + ",".join(request.capabilities),
            )
        finally:
            self._notes.pop(need, None)
        self._pools[need] = choice.task_queue
        return choice.task_queue
