"""How the agent profile serving a pool shapes the agents that run on it.

The profile comes with the pool lookup's answer (`PoolChoice.profile`, recorded in the task's
history by the lookup's local activity), so every replay builds the same agent. The worker of
the pool offers and runs only the profile's tools (its own tool catalogue, `workers/main.py`).
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from mahsm.contracts.engine import AgentInput
    from mahsm.contracts.pipeline import AgentStep
    from mahsm.contracts.profile import PoolProfile


def with_profile(agent: AgentInput, profile: PoolProfile | None) -> AgentInput:
    """`agent` as the profile makes it: its instructions, model and iteration limit.

    A pipeline agent step's own `model` and `max_iterations` win over the profile's; the
    profile's instructions come before a task's prompt artifact's.
    """
    if profile is None:
        return agent
    step = agent.subtask.step
    own = step if isinstance(step, AgentStep) else None
    update: dict[str, object] = {"agent": profile.name}
    if profile.instructions:
        parts = [profile.instructions, agent.instructions]
        update["instructions"] = "\n\n".join(p for p in parts if p)
    if profile.model is not None and (own is None or own.model is None):
        update["model"] = profile.model
    if profile.max_iterations is not None and (own is None or own.max_iterations is None):
        update["max_iterations"] = profile.max_iterations
    return agent.model_copy(update=update)
