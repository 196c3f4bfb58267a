"""Prompt artifacts of a task's agents (`options.artifact`, an agent step's `artifact`).

Each artifact an agent will use is read once when the run starts, before any agent runs, by
the `prompt_artifact_get` activity, which also checks the tools the artifact was saved with
against the worker's: a missing or changed tool fails the task then, not midway. Agents get
the artifact's instructions and demos as a system message (`AgentInput.instructions`).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from mahsm.activities.prompt_artifacts import ArtifactRequest, PromptActivities
    from mahsm.contracts.pipeline import AgentStep, StepKind
    from mahsm.contracts.task import Plan, TaskOptions
    from mahsm.prompt.artifact import agent_instructions
    from mahsm.prompt.store import parse_ref
    from mahsm.workflows.failures import failure_message
    from mahsm.workflows.retry import STORE_RETRY


class ArtifactUnusable(Exception):
    """An artifact an agent names is missing, or its tools do not match the worker's."""


def agent_artifact(options: TaskOptions, step: object) -> str | None:
    """The artifact an agent uses: its step's own, else the task's."""
    if isinstance(step, AgentStep) and step.artifact is not None:
        return step.artifact
    return options.artifact


async def load_agent_artifacts(options: TaskOptions, plan: Plan) -> dict[str, str]:
    """The instructions of every artifact the plan's agents use, by reference.

    Raises:
        ArtifactUnusable: naming the field (`options.artifact`, `steps.<name>.artifact`).
    """
    fields: dict[str, str] = {}
    for subtask in plan.subtasks:
        if subtask.kind != StepKind.AGENT:
            continue
        ref = agent_artifact(options, subtask.step)
        if ref is not None and ref not in fields:
            own = isinstance(subtask.step, AgentStep) and subtask.step.artifact is not None
            fields[ref] = f"steps.{subtask.id}.artifact" if own else "options.artifact"
    loaded = {}
    for ref, field in fields.items():
        name, version = parse_ref(ref)
        try:
            result = await workflow.execute_activity_method(
                PromptActivities.get,
                ArtifactRequest(name=name, version=version, saved_tools=True),
                activity_id=f"artifact-{ref}",
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=STORE_RETRY,
                summary=f"prompt artifact {ref}",
            )
        except ActivityError as error:
            if is_cancelled_exception(error):
                raise
            raise ArtifactUnusable(f"{field}: {failure_message(error)}") from None
        loaded[ref] = agent_instructions(result.artifact)
    return loaded
