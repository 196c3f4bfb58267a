"""How a pool's profile shapes its agents (`with_profile`, applied to every agent it serves)."""

from __future__ import annotations

from mahsm.contracts.engine import AgentInput
from mahsm.contracts.pipeline import AgentStep
from mahsm.contracts.profile import PoolProfile
from mahsm.contracts.task import Subtask
from mahsm.workflows.pool_profiles import with_profile

PROFILE = PoolProfile(
    name="legal-reviewer",
    capabilities=["legal_review"],
    description="Reviews contracts.",
    instructions="Be careful.",
    model="openai/gpt-4o",
    max_iterations=3,
)


def agent(step: AgentStep | None = None, instructions: str | None = None) -> AgentInput:
    subtask = Subtask(
        id="review", description="Review", required_capabilities=["legal_review"], step=step
    )
    return AgentInput(
        task_id="task-1",
        task_description="A task",
        subtask=subtask,
        model="openai/gpt-4o-mini",
        max_iterations=8,
        llm_timeout_s=1,
        tool_timeout_s=1,
        instructions=instructions,
    )


def test_the_profile_sets_instructions_model_iterations_and_the_agents_name() -> None:
    shaped = with_profile(agent(instructions="From the task's artifact."), PROFILE)
    assert shaped.agent == "legal-reviewer"
    assert shaped.model == "openai/gpt-4o"
    assert shaped.max_iterations == 3
    assert shaped.instructions == "Be careful.\n\nFrom the task's artifact."


def test_a_pipeline_steps_own_model_and_limit_win_over_the_profiles() -> None:
    step = AgentStep(
        name="review", description="Review", model="anthropic/claude-x", max_iterations=5
    )
    # GraphRunner has already taken the step's own values.
    built = agent(step).model_copy(update={"model": "anthropic/claude-x", "max_iterations": 5})
    shaped = with_profile(built, PROFILE)
    assert shaped.model == "anthropic/claude-x"
    assert shaped.max_iterations == 5
    assert shaped.instructions == "Be careful."


def test_without_a_profile_the_agent_is_unchanged() -> None:
    plain = agent()
    assert with_profile(plain, None) is plain
    minimal = PoolProfile(name="p", capabilities=["x"], description="d")
    assert with_profile(plain, minimal).model_dump(exclude={"agent"}) == plain.model_dump(
        exclude={"agent"}
    )
