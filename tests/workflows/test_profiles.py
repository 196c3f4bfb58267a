"""Custom capabilities served by agent profiles: planned for, routed, run as the profile says."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import dspy
import pytest
import yaml

from mahsm import prompt
from mahsm.activities.llm.provider import CallContext
from mahsm.activities.llm.registry import ProviderRegistry
from mahsm.activities.llm.scripted import ScriptedProvider
from mahsm.contracts.llm import LLMPurpose, LLMRequest, LLMResponse
from mahsm.contracts.task import (
    Capability,
    Plan,
    Subtask,
    SubtaskStatus,
    TaskOptions,
    TaskRequest,
    TaskStatus,
)
from mahsm.pool_liveness import PoolDirectory
from mahsm.profiles import ProfileError
from mahsm.queues import pool_queue
from mahsm.settings import Settings, load_settings
from mahsm.workers.main import build_workers
from tests.engine_harness import AGGREGATE, Engine, plan_rule

PROFILE = {
    "name": "legal-reviewer",
    "capabilities": ["legal_review"],
    "description": "Reviews contracts for risky clauses (PROFILE-DESCRIPTION)",
    "instructions": "You are a careful legal reviewer. LEGAL-INSTRUCTIONS",
    "tools": ["calculator"],
    "model": "rec/legal",
    "max_iterations": 3,
}


class RecordingProvider(ScriptedProvider):
    """The scripted provider, keeping every request it answers (what the model was sent)."""

    requests: list[LLMRequest] = []

    async def complete(
        self, request: LLMRequest, *, model: str, context: CallContext
    ) -> LLMResponse:
        self.requests.append(request)
        return await super().complete(request, model=model, context=context)


def recording(calls: list[LLMRequest], data_dir: Path) -> ProviderRegistry:
    """Providers where `rec/<name>` answers from the test's scenario, recording each request."""

    def factory(settings: Settings) -> RecordingProvider:
        provider = RecordingProvider(settings=settings)
        provider.requests = calls
        return provider

    # running_engine writes the test's scenario there.
    settings = load_settings(_env_file=None, scripted_scenario=data_dir / "scenario.yaml")
    registry = ProviderRegistry(settings, load_entry_points=False)
    registry.register("rec", factory)
    return registry


def profile_file(tmp_path: Path, **changes: Any) -> Path:
    path = tmp_path / "profiles.yaml"
    path.write_text(yaml.safe_dump({**PROFILE, **changes}))
    return path


async def wait_live(engine: Engine, capabilities: list[str]) -> None:
    """Until the pool's worker polls (the planner is told only live pools' capabilities)."""
    directory = PoolDirectory(engine.client, cache_s=0)
    queue = pool_queue(engine.settings.queue_prefix, capabilities)
    for _ in range(100):
        if await directory.is_live(queue):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{queue} never became live")


CALCULATE = {"name": "calculator", "arguments": {"expression": "6*7"}}


def scenario(*plans: dict[str, Any]) -> dict[str, Any]:
    return {
        "rules": [
            *plans,
            {
                "purpose": "agent_step",
                "subtask": "review",
                "after_tool": True,
                "respond": {"content": "clause 4 is risky: {last_tool_result}"},
            },
            {
                "purpose": "agent_step",
                "subtask": "review",
                "respond": {
                    "tool_calls": [{"name": "calculator", "arguments": {"expression": "6*7"}}]
                },
            },
            {"purpose": "agent_step", "respond": {"content": "summary done"}},
            AGGREGATE,
        ]
    }


REVIEW = {
    "id": "review",
    "description": "Review the NDA",
    "required_capabilities": ["legal_review"],
}
SUMMARY = {
    "id": "summary",
    "description": "Summarise",
    "required_capabilities": ["data_analysis"],
    "depends_on": ["review"],
}


async def test_a_custom_capability_is_planned_for_and_runs_on_its_profiles_pool(
    engine_factory: Any, tmp_path: Path, data_dir: Path
) -> None:
    calls: list[LLMRequest] = []
    async with engine_factory(
        scenario(plan_rule("contract", [REVIEW, SUMMARY])),
        capabilities=[Capability.DATA_ANALYSIS],
        providers=recording(calls, data_dir),
        profiles=profile_file(tmp_path),
        profile_entry_points=False,
    ) as engine:
        await wait_live(engine, ["legal_review"])
        await wait_live(engine, ["data_analysis"])
        handle = await engine.start(
            TaskRequest(description="Review this contract", options=TaskOptions(model="rec/test"))
        )
        state = await handle.result()

    assert state.status == TaskStatus.COMPLETED, state.error
    planner = next(c for c in calls if c.purpose == LLMPurpose.PLAN)
    system = planner.messages[0].content or ""
    assert "- legal_review: Reviews contracts for risky clauses (PROFILE-DESCRIPTION)" in system
    assert "- data_analysis: " in system
    schema: Any = planner.response_schema
    enum = schema["$defs"]["Subtask"]["properties"]["required_capabilities"]["items"]["enum"]
    assert enum == ["data_analysis", "legal_review"]  # only live pools' capabilities

    review = [c for c in calls if c.purpose == LLMPurpose.AGENT_STEP and c.subtask_id == "review"]
    assert len(review) == 2  # a tool call, then the answer
    assert all(c.model == "rec/legal" for c in review)  # the profile's model
    assert "LEGAL-INSTRUCTIONS" in "".join(m.content or "" for m in review[0].messages)
    assert [t.name for t in review[0].tools] == ["calculator"]  # only the profile's tools
    summary = next(c for c in calls if c.subtask_id == "summary")
    assert summary.model == "rec/test"
    assert "LEGAL-INSTRUCTIONS" not in "".join(m.content or "" for m in summary.messages)
    assert "read_file" in {t.name for t in summary.tools}  # the default agent's catalogue

    item = state.subtask("review")
    assert item.result.status == SubtaskStatus.COMPLETED
    assert item.result.output == "clause 4 is risky: 42"
    assert item.result.pool == pool_queue(engine.settings.queue_prefix, ["legal_review"])
    assert item.result.agent == "legal-reviewer"
    assert state.subtask("summary").result.pool == pool_queue(
        engine.settings.queue_prefix, ["data_analysis"]
    )


async def test_a_planned_capability_no_live_pool_serves_is_repaired(
    engine_factory: Any, tmp_path: Path, data_dir: Path
) -> None:
    astrology = {**REVIEW, "required_capabilities": ["astrology"]}
    repaired = {
        "purpose": "plan",
        "match": "unknown capabilities 'astrology'",
        "respond": {"plan": {"subtasks": [REVIEW]}},
    }
    calls: list[LLMRequest] = []
    async with engine_factory(
        scenario(repaired, plan_rule("contract", [astrology])),
        capabilities=[Capability.DATA_ANALYSIS],
        providers=recording(calls, data_dir),
        profiles=profile_file(tmp_path),
        profile_entry_points=False,
    ) as engine:
        await wait_live(engine, ["legal_review"])
        handle = await engine.start(
            TaskRequest(description="Review this contract", options=TaskOptions(model="rec/test"))
        )
        state = await handle.result()

    assert state.status == TaskStatus.COMPLETED, state.error
    plans = [c for c in calls if c.purpose == LLMPurpose.PLAN]
    assert len(plans) == 2  # the first plan went back to the planner once
    feedback = plans[1].messages[-1].content or ""
    assert "subtask 'review' requires unknown capabilities 'astrology'" in feedback
    assert "use only: data_analysis, legal_review" in feedback
    assert [s.subtask.required_capabilities for s in state.subtasks] == [["legal_review"]]
    assert state.subtask("review").result.agent == "legal-reviewer"


async def test_a_profiles_prompt_artifact_gives_its_agents_instructions(
    engine_factory: Any, tmp_path: Path, data_dir: Path, db_pool: Any
) -> None:
    tuned = "You review NDAs for ACME. ARTIFACT-INSTRUCTIONS"
    program = dspy.Predict(dspy.Signature("contract: str -> review: str").with_instructions(tuned))
    ref = await prompt.save(program, f"legal-{uuid.uuid4().hex[:8]}", pool=db_pool)
    path = profile_file(tmp_path, instructions=None, artifact=f"{ref.name}@{ref.version}")
    calls: list[LLMRequest] = []
    plan = Plan(subtasks=[Subtask.model_validate(REVIEW)])
    async with engine_factory(
        scenario(),
        capabilities=[Capability.DATA_ANALYSIS],
        providers=recording(calls, data_dir),
        profiles=path,
        profile_entry_points=False,
    ) as engine:
        request = TaskRequest(
            description="Review the NDA", plan=plan, options=TaskOptions(model="rec/t")
        )
        state = await (await engine.start(request)).result()

    assert state.status == TaskStatus.COMPLETED, state.error
    review = next(c for c in calls if c.subtask_id == "review")
    system = "\n".join(m.content or "" for m in review.messages if m.role == "system")
    assert "ARTIFACT-INSTRUCTIONS" in system
    assert f"{ref.name}@{ref.version}" in system


async def test_a_profile_naming_a_tool_the_worker_lacks_stops_the_worker_at_start(
    temporal_client: Any, db_pool: Any, tmp_path: Path
) -> None:
    settings = load_settings(
        _env_file=None, profiles=profile_file(tmp_path, tools=["calculator", "telepathy"])
    )
    with pytest.raises(ProfileError) as raised:
        build_workers(client=temporal_client, pool=db_pool, settings=settings)
    assert str(raised.value).startswith(
        "agent profiles in profile 'legal-reviewer': tools: unknown tool 'telepathy';"
        " the worker's tools are calculator, get_shared_state,"
    )


async def test_the_documented_example_runs_on_the_scripted_model(engine_factory: Any) -> None:
    # docs/profiles.md: examples/profiles/ (a profile and its scripted scenario).
    example = Path(__file__).resolve().parents[2] / "examples" / "profiles"
    async with engine_factory(
        yaml.safe_load((example / "scenarios" / "legal-review.yaml").read_text()),
        profiles=example / "legal-reviewer.yaml",
        profile_entry_points=False,
    ) as engine:
        await wait_live(engine, ["legal_review"])
        request = TaskRequest(description="Review this contract: the ACME NDA")
        state = await (await engine.start(request)).result()

    assert state.status == TaskStatus.COMPLETED, state.error
    review = state.subtask("review").result
    assert review.agent == "legal-reviewer"
    assert review.pool == pool_queue(engine.settings.queue_prefix, ["legal_review"])
    assert review.model == "scripted/legal"
    assert state.result == "The NDA has one high-risk clause (unlimited liability); cap it."
