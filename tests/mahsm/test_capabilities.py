"""Capabilities are any identifiers; the six built-ins keep their names and payloads parse."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from mahsm.contracts.engine import EngineDefaults
from mahsm.contracts.profile import CapabilityInfo
from mahsm.contracts.task import Capability, Plan, Subtask
from mahsm.plan_validation import unknown_capabilities
from mahsm.queues import candidate_pools, pool_capabilities, pool_queue
from mahsm.workflows import prompts


def test_builtins_are_attributes_and_what_iterating_yields() -> None:
    assert Capability.DATA_ANALYSIS == "data_analysis"
    assert Capability.WEB_SCRAPING.value == "web_scraping"
    assert [c.value for c in Capability] == [
        "data_analysis",
        "web_scraping",
        "code_generation",
        "file_processing",
        "database_operations",
        "api_integration",
    ]
    assert f"{Capability.API_INTEGRATION}" == "api_integration"


def test_any_identifier_is_a_capability_and_others_are_refused() -> None:
    subtask = Subtask(id="a", description="d", required_capabilities=["legal_review"])
    assert subtask.required_capabilities == [Capability("legal_review")]
    with pytest.raises(ValidationError, match="required_capabilities.0"):
        Subtask(id="a", description="d", required_capabilities=["Legal Review"])
    with pytest.raises(ValueError, match="e.g. legal_review"):
        Capability("9lives")


def test_a_payload_recorded_when_capabilities_were_an_enum_parses_and_writes_the_same() -> None:
    recorded = (
        '{"subtasks":[{"id":"a","description":"d","required_capabilities":'
        '["data_analysis","web_scraping"],"depends_on":[]}]}'
    )
    plan = Plan.model_validate_json(recorded)
    dumped = json.loads(plan.model_dump_json())
    assert dumped["subtasks"][0]["required_capabilities"] == ["data_analysis", "web_scraping"]
    # engine_defaults recorded before capabilities were told to the planner
    assert (
        EngineDefaults.model_validate(
            {
                "model": "scripted/x",
                "task_timeout_s": 1,
                "subtask_timeout_s": 1,
                "llm_timeout_s": 1,
                "tool_timeout_s": 1,
                "capability_wait_s": 1,
                "claim_check_bytes": 1,
            }
        ).capabilities
        == []
    )


def test_pools_of_custom_capabilities_come_from_the_known_queues() -> None:
    legal = pool_queue("p", ["legal_review"])
    both = pool_queue("p", ["legal_review", "data_analysis"])
    assert pool_capabilities(both) == {"data_analysis", "legal_review"}
    assert candidate_pools("p", ["legal_review"], known=[both, legal]) == [legal, both]
    assert candidate_pools("p", ["legal_review"]) == []  # cannot be enumerated
    # Built-in needs: every built-in superset, plus known pools that include them.
    found = candidate_pools("p", ["data_analysis"], known=[both])
    assert found[0] == pool_queue("p", ["data_analysis"])
    assert both in found and len(found) == 32 + 1


def test_without_known_capabilities_the_planner_prompt_and_schema_are_as_before() -> None:
    # Histories recorded before capabilities were told replay with the same planner request.
    assert prompts.planner_system([]) == prompts.PLANNER_SYSTEM
    assert "one or more of: data_analysis, web_scraping" in prompts.PLANNER_SYSTEM
    schema: dict[str, object] = prompts.plan_schema()
    items = schema["$defs"]["Subtask"]["properties"]["required_capabilities"]["items"]  # type: ignore[index]
    assert items["enum"] == [c.value for c in Capability]


def test_the_planner_is_told_the_known_capabilities_with_their_descriptions() -> None:
    told = [
        CapabilityInfo(name="legal_review", description="Reviews contracts."),
        CapabilityInfo(name="data_analysis", description="analyse data"),
    ]
    system = prompts.planner_system(told)
    assert "one or more of the capabilities below" in system
    assert "data_analysis, web_scraping" not in system
    assert system.endswith(
        "Capabilities:\n- legal_review: Reviews contracts.\n- data_analysis: analyse data"
    )


def test_a_plan_naming_an_unknown_capability_is_invalid_and_says_which_to_use() -> None:
    answer = json.dumps(
        {"subtasks": [{"id": "a", "description": "d", "required_capabilities": ["astrology"]}]}
    )
    plan, errors = prompts.parse_plan(answer, ["legal_review", "data_analysis"])
    assert plan is None
    assert errors == [
        "subtask 'a' requires unknown capabilities 'astrology'; use only: data_analysis,"
        " legal_review"
    ]
    assert prompts.parse_plan(answer)[0] is not None  # nothing known: not checked
    parsed = Plan.model_validate_json(answer)
    assert unknown_capabilities(parsed, ["astrology"]) == []


def test_a_planned_builtin_nobody_serves_is_kept_to_wait_for_a_worker() -> None:
    told = [CapabilityInfo(name="legal_review", description="Reviews contracts.")]
    known = prompts.accepted_capabilities(told)
    assert known == sorted([*(c.value for c in Capability), "legal_review"])
    assert prompts.accepted_capabilities([]) == []
    answer = json.dumps(
        {
            "subtasks": [
                {"id": "a", "description": "d", "required_capabilities": ["web_scraping"]},
                {"id": "b", "description": "d", "required_capabilities": ["astrology"]},
            ]
        }
    )
    plan, errors = prompts.parse_plan(answer, known, suggest=["legal_review"])
    assert plan is None
    assert errors == [
        "subtask 'b' requires unknown capabilities 'astrology'; use only: legal_review"
    ]
