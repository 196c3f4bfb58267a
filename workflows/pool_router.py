"""Which capability pool's queue a subtask's calls go to (engine v2).

A pool is found by `resolve_pool` run as a local activity: the worker asks Temporal which
queues have pollers, with no activity task and no round trip through the task's history
beyond one marker. Subtasks needing the same capabilities share the answer. When a call sat
on its pool's queue without a worker taking it (the pool's workers died after it was
chosen), the subtask shows why in `waiting_for` and the pool is looked up again, preferring
any other live pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import FailureError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from mahsm.activities.engine import EngineActivities
    from mahsm.contracts.engine import PoolRequest
    from mahsm.contracts.profile import PoolProfile
    from mahsm.contracts.task import Capability
    from mahsm.queues import prefix_of
    from mahsm.workflows.failures import failure_message
    from mahsm.workflows.task_recorder import TaskRecorder

# How long a call may wait on its pool's queue before the pool is looked up again.
POOL_PICKUP_S = 15.0
_LOOKUP_TIMEOUT = timedelta(seconds=10)
# While no pool serves a need, it is looked up again after these pauses (growing 1.5x).
_FIRST_PAUSE_S = 1.0
_MAX_PAUSE_S = 5.0

Need = frozenset[Capability]


class PoolRouter:
    """Resolves capability sets to live pool queues; re-resolves a pool that stopped working."""

    def __init__(
        self,
        *,
        recorder: TaskRecorder,
        wait_s: float,
        busy: Callable[[], AbstractContextManager[None]] = nullcontext,
    ) -> None:
        self._recorder = recorder
        self._wait_s = wait_s
        self._busy = busy  # marks the first, quick lookup as work in flight
        self._queues: dict[Need, str] = {}
        self._lookups: dict[Need, asyncio.Task[str]] = {}
        self._waiting: dict[Need, set[str]] = {}
        self._notes: dict[Need, str] = {}
        self._profiles: dict[str, PoolProfile] = {}
        self._calls_queues: dict[str, str] = {}  # pool -> where its calls go, when elsewhere

    def profile(self, queue: str) -> PoolProfile | None:
        """The agent profile serving `queue`, as its lookup answered (None: the default)."""
        return self._profiles.get(queue)

    def calls_queue(self, queue: str) -> str:
        """Where the LLM and tool calls of pool `queue` go.

        The task's own queue when the lookup found every worker polling it serving the pool
        too (calls then start eagerly), else `queue` itself.
        """
        return self._calls_queues.get(queue, queue)

    async def queue_for(self, subtask_id: str, need: Need) -> str:
        """The queue of a live pool serving `need`; waits (visibly) while none does."""
        if need in self._queues:
            return self._queues[need]
        return await self._shared_lookup(subtask_id, need, avoid=[])

    async def replace(self, subtask_id: str, need: Need, stalled: str, waited_s: float) -> str:
        """A queue to use instead of `stalled`, where a call waited `waited_s` for a worker.

        Another live pool is preferred; when there is none, `stalled` is returned again and
        the subtask shows that it waits for that pool's workers.
        """
        if self._queues.get(need) not in (None, stalled):
            return self._queues[need]  # another subtask already moved on
        self._queues.pop(need, None)
        avoid = [stalled]
        if stalled in self._calls_queues:  # the calls waited on the task's own queue
            avoid.append(self._calls_queues.pop(stalled))
        note = (
            f"no worker took this subtask's work from {stalled} within {waited_s:g}s"
            " (its workers may have stopped); looking for a live pool"
        )
        self._recorder.update_subtask(subtask_id, waiting_for=note)
        queue = await self._shared_lookup(subtask_id, need, avoid=avoid)
        if queue == stalled:
            self._recorder.update_subtask(
                subtask_id,
                waiting_for=f"waiting for a worker of {stalled}: none took work within"
                f" {waited_s:g}s; start one (mahsm worker) or the subtask times out",
            )
        else:
            self._recorder.update_subtask(subtask_id, waiting_for=None, pool=queue)
            self._recorder.note(
                f"moved from {stalled} to {queue}: no worker took its work within {waited_s:g}s",
                subtask_id=subtask_id,
            )
        return queue

    def worked(self, subtask_id: str) -> None:
        """A re-routed call of the subtask was taken by a worker: clear its `waiting_for`."""
        if self._recorder.state.subtask(subtask_id).result.waiting_for is not None:
            self._recorder.update_subtask(subtask_id, waiting_for=None)

    async def _shared_lookup(self, subtask_id: str, need: Need, *, avoid: list[str]) -> str:
        lookup = self._lookups.get(need)
        if lookup is None:
            self._waiting[need] = set()
            lookup = asyncio.create_task(self._lookup(need, avoid))
            self._lookups[need] = lookup
        waiting = self._waiting[need]
        waiting.add(subtask_id)
        if need in self._notes:
            self._recorder.update_subtask(subtask_id, waiting_for=self._notes[need])
        try:
            return await asyncio.shield(lookup)
        finally:
            waiting.discard(subtask_id)
            if lookup.done():
                self._lookups.pop(need, None)

    async def _lookup(self, need: Need, avoid: list[str]) -> str:
        request = PoolRequest(
            queue_prefix=prefix_of(workflow.info().task_queue),
            capabilities=sorted(need),
            avoid=avoid,
        )
        give_up = workflow.now() + timedelta(seconds=self._wait_s)
        pause = _FIRST_PAUSE_S
        try:
            while True:
                try:
                    with self._busy():
                        choice = await workflow.execute_local_activity_method(
                            EngineActivities.resolve_pool,
                            request,
                            start_to_close_timeout=_LOOKUP_TIMEOUT,
                            retry_policy=RetryPolicy(maximum_attempts=1),
                            summary="find pool: " + ",".join(request.capabilities),
                        )
                    break
                except FailureError as error:  # a local activity's failure is no ActivityError
                    if is_cancelled_exception(error):
                        raise asyncio.CancelledError() from error
                    if workflow.now() >= give_up:
                        raise
                    note = f"{failure_message(error)} (waiting up to {self._wait_s:g}s)"
                    if self._notes.get(need) != note:
                        self._notes[need] = note
                        for subtask_id in self._waiting.get(need, ()):
                            self._recorder.update_subtask(subtask_id, waiting_for=note)
                    await workflow.sleep(min(pause, (give_up - workflow.now()).total_seconds()))
                    pause = min(pause * 1.5, _MAX_PAUSE_S)
        finally:
            self._notes.pop(need, None)
        self._queues[need] = choice.task_queue
        if choice.profile is not None:
            self._profiles[choice.task_queue] = choice.profile
        if choice.calls_queue is not None:
            self._calls_queues[choice.task_queue] = choice.calls_queue
        return choice.task_queue

    def cancel_all(self) -> None:
        """Stop lookups still in flight (the task is being cancelled)."""
        for lookup in self._lookups.values():
            lookup.cancel()
