"""The task's state inside `TaskWorkflow`: every change is versioned, logged and made durable.

Deterministic: it reads the clock only through `workflow.now()`.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Final

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from mahsm import search_attributes
    from mahsm.contracts.estimate import PlanEstimate
    from mahsm.contracts.projection import StoreWrite, TaskEvent
    from mahsm.contracts.task import (
        BlobRef,
        Plan,
        PlanRevision,
        SubtaskState,
        SubtaskStatus,
        TaskState,
        TaskStatus,
        Usage,
    )


class _Keep(Enum):
    KEEP = "keep"


KEEP: Final = _Keep.KEEP
"""Default of `update_subtask`'s fields: leave the field as it is (None clears it)."""


class TaskRecorder:
    """Holds `TaskState`; tracks what changed since the last write to Postgres."""

    def __init__(self, state: TaskState) -> None:
        self.state = state
        self._changed_subtasks: set[str] = set()
        self._events: list[TaskEvent] = []
        self._task_changed = False
        self._plan_changed = False
        self._estimate_changed = False
        self._event_seq = 0

    @property
    def dirty(self) -> bool:
        """True when something changed since the last `take_write`."""
        return self._task_changed

    def _touch(self) -> None:
        self.state.version += 1
        self.state.updated_at = workflow.now()
        self._task_changed = True

    def _log(self, kind: str, **fields: Any) -> None:
        self._event_seq += 1
        self._events.append(TaskEvent(seq=self._event_seq, kind=kind, at=workflow.now(), **fields))

    def set_status(
        self, status: TaskStatus, *, error: str | None = None, upsert: bool = True
    ) -> None:
        """Move the task to `status`, logging it and (with `upsert`) updating its search attribute.

        The search attribute already holds `pending` when the task starts (`start_task`).
        """
        self.state.status = status
        if error is not None:
            self.state.error = error
        self._log("task_status", status=status, message=error)
        self._touch()
        if (
            upsert
            and workflow.info().typed_search_attributes.get(search_attributes.TASK_STATUS)
            is not None
        ):
            workflow.upsert_search_attributes(
                [search_attributes.TASK_STATUS.value_set(status.value)]
            )
        self._describe_progress()

    def set_plan(self, plan: Plan) -> None:
        """Record the plan; every subtask starts `pending`."""
        self.state.plan = plan
        self._plan_changed = True
        self.state.subtasks = [SubtaskState(subtask=s) for s in plan.subtasks]
        self._changed_subtasks.update(s.id for s in plan.subtasks)
        self._log("plan_ready", message=f"{len(plan.subtasks)} subtasks")
        for subtask in plan.subtasks:
            self._log("subtask_status", subtask_id=subtask.id, status=SubtaskStatus.PENDING)
        self._touch()
        self._describe_progress()

    def update_subtask(
        self,
        subtask_id: str,
        *,
        status: SubtaskStatus | _Keep = KEEP,
        output: str | None | _Keep = KEEP,
        output_ref: BlobRef | None | _Keep = KEEP,
        error: str | None | _Keep = KEEP,
        agent: str | None | _Keep = KEEP,
        pool: str | None | _Keep = KEEP,
        started_at: datetime | None | _Keep = KEEP,
        finished_at: datetime | None | _Keep = KEEP,
        attempts: int | _Keep = KEEP,
        usage: Usage | _Keep = KEEP,
        waiting_for: str | None | _Keep = KEEP,
        value: Any | _Keep = KEEP,
        model: str | None | _Keep = KEEP,
        detections: dict[str, int] | _Keep = KEEP,
        llm_calls: int | None | _Keep = KEEP,
    ) -> None:
        """Change fields of a subtask's result (typed; `KEEP` leaves one as it is).

        A status change is logged.
        """
        fields = {
            "status": status,
            "output": output,
            "output_ref": output_ref,
            "error": error,
            "agent": agent,
            "pool": pool,
            "started_at": started_at,
            "finished_at": finished_at,
            "attempts": attempts,
            "usage": usage,
            "waiting_for": waiting_for,
            "value": value,
            "model": model,
            "detections": detections,
            "llm_calls": llm_calls,
        }
        changes = {name: value for name, value in fields.items() if value is not KEEP}
        item = self.state.subtask(subtask_id)
        before = item.result.status
        item.result = item.result.model_copy(update=changes)
        self._changed_subtasks.add(subtask_id)
        if item.result.status != before:
            self._log(
                "subtask_status",
                subtask_id=subtask_id,
                status=item.result.status,
                message=item.result.error,
            )
            self._describe_progress()
        self._touch()

    def add_usage(self, usage: Usage) -> None:
        """Add the usage of LLM calls to the task's total."""
        self.state.usage = self.state.usage + usage
        self._touch()

    def set_estimate(self, estimate: PlanEstimate) -> None:
        """Record the plan's estimate (or the estimate with its actuals, at the end)."""
        self.state.estimate = estimate
        self._estimate_changed = True
        self._touch()

    def note(self, message: str, *, subtask_id: str | None = None) -> None:
        """Log an informational event (agent logs, waits)."""
        self._log("note", subtask_id=subtask_id, message=message)
        self._touch()

    def take_write(self) -> StoreWrite | None:
        """Everything changed since the previous call, as one store write (or None)."""
        if not self._task_changed:
            return None
        changed = [s for s in self.state.subtasks if s.subtask.id in self._changed_subtasks]
        # The plan is written once: resending it with every change would grow history.
        plan = self.state.plan if self._plan_changed else None
        estimate = self.state.estimate if self._estimate_changed else None  # once, as the plan
        write = StoreWrite(
            state=self.state.model_copy(
                update={"subtasks": changed, "plan": plan, "estimate": estimate}
            ),
            events=self._events,
        )
        self._plan_changed = False
        self._estimate_changed = False
        self._changed_subtasks = set()
        self._events = []
        self._task_changed = False
        return write

    def requeue(self, write: StoreWrite) -> None:
        """Take back a write that may not have reached Postgres; the next write carries it.

        Rows are version-guarded and events keyed by sequence, so writing it twice is harmless.
        """
        if write.state.plan is not None:
            self._plan_changed = True
        if write.state.estimate is not None:
            self._estimate_changed = True
        self._changed_subtasks.update(item.subtask.id for item in write.state.subtasks)
        self._events = sorted([*write.events, *self._events], key=lambda e: e.seq)
        self._task_changed = True

    def _describe_progress(self) -> None:
        """A short text for the Temporal UI's 'current details' of this workflow."""
        counts: dict[str, int] = {}
        for item in self.state.subtasks:
            counts[item.result.status.value] = counts.get(item.result.status.value, 0) + 1
        parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        model = f" · model `{self.state.model}`" if self.state.model else ""
        revised = self.state.revisions[-1] if self.state.revisions else None
        why = f" · plan revised ({revised.number}): {revised.reason[:200]}" if revised else ""
        workflow.set_current_details(
            f"**{self.state.status.value}**"
            + (f": subtasks {parts}" if parts else "")
            + model
            + why
        )

    def revise_plan(self, plan: Plan, revision: PlanRevision) -> None:
        """Adopt a revised plan: finished subtasks stay, new ones start `pending`.

        Subtasks the revision dropped (failed, blocked) stay in `state.subtasks` with their
        status, outside `state.plan`: the record of what was tried.
        """
        known = {item.subtask.id for item in self.state.subtasks}
        self.state.plan = plan
        self._plan_changed = True
        self.state.revisions.append(revision)
        self._log(
            "plan_revised",
            message=f"plan revised ({revision.number}): {revision.reason} · {revision.summary}",
        )
        for subtask in plan.subtasks:
            if subtask.id not in known:
                self.state.subtasks.append(SubtaskState(subtask=subtask))
                self._changed_subtasks.add(subtask.id)
                self._log("subtask_status", subtask_id=subtask.id, status=SubtaskStatus.PENDING)
        self._touch()
        self._describe_progress()
