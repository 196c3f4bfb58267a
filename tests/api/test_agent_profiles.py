"""Profiles through the API: `GET /agents` shows them; unknown capabilities in a request: 422."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml

from mahsm.contracts.task import Capability
from mahsm.queues import pool_queue
from tests.api.conftest import ApiStack, StackFactory
from tests.engine_harness import AGGREGATE

PROFILE = {
    "name": "legal-reviewer",
    "capabilities": ["legal_review"],
    "description": "Reviews contracts for risky clauses.",
    "instructions": "Be careful.",
    "tools": ["calculator"],
    "model": "scripted/legal",
    "max_iterations": 4,
}
SCENARIO = {"rules": [{"purpose": "agent_step", "respond": {"content": "ok"}}, AGGREGATE]}


def profiles(tmp_path: Path) -> Path:
    path = tmp_path / "legal.yaml"
    path.write_text(yaml.safe_dump(PROFILE))
    return path


async def agents_when(stack: ApiStack, ready: Any) -> dict[str, Any]:
    """`GET /agents` once `ready(body)` holds (workers poll a moment after they start)."""
    body: dict[str, Any] = {}
    for _ in range(100):
        response = await stack.http.get("/agents")
        if response.status_code == 200:
            body = response.json()
            if ready(body):
                return body
        else:
            assert response.status_code == 503, response.text  # transient under load
        await asyncio.sleep(0.1)
    raise AssertionError(f"GET /agents never showed the pools: {body}")


async def test_agents_lists_each_pools_profile_and_the_capabilities_the_planner_is_told(
    api_stack: StackFactory, tmp_path: Path
) -> None:
    async with api_stack(
        SCENARIO,
        capabilities=[Capability.DATA_ANALYSIS],
        profiles=profiles(tmp_path),
        profile_entry_points=False,
    ) as stack:
        body = await agents_when(stack, lambda b: len(b["pools"]) == 2)
        prefix = stack.engine.settings.queue_prefix

    pools = {p["task_queue"]: p for p in body["pools"]}
    legal = pools[pool_queue(prefix, ["legal_review"])]
    assert legal["capabilities"] == ["legal_review"]
    assert legal["workers"] and legal["workers"][0]["identity"]
    assert legal["profile"] == {
        "name": "legal-reviewer",
        "capabilities": ["legal_review"],
        "description": "Reviews contracts for risky clauses.",
        "tools": ["calculator"],
        "model": "scripted/legal",
        "max_iterations": 4,
        "artifact": None,
    }
    assert pools[pool_queue(prefix, ["data_analysis"])]["profile"] is None
    told = {c["name"]: c for c in body["capabilities"]}
    assert set(told) == {"data_analysis", "legal_review"}
    assert told["legal_review"]["description"] == "Reviews contracts for risky clauses."
    assert told["legal_review"]["profiles"] == ["legal-reviewer"]


def plan(*capabilities: str) -> dict[str, Any]:
    return {
        "subtasks": [
            {"id": f"s{i}", "description": "Do it", "required_capabilities": [capability]}
            for i, capability in enumerate(capabilities)
        ]
    }


async def test_a_request_naming_an_unknown_capability_is_422_listing_the_known_ones(
    api_stack: StackFactory, tmp_path: Path
) -> None:
    async with api_stack(
        SCENARIO,
        capabilities=[Capability.DATA_ANALYSIS],
        profiles=profiles(tmp_path),
        profile_entry_points=False,
    ) as stack:
        await agents_when(stack, lambda b: len(b["pools"]) == 2)
        refused = await stack.http.post(
            "/tasks",
            json={"description": "Review the contract", "plan": plan("data_analysis", "astrology")},
        )
        pipeline = {
            "name": "review",
            "steps": [
                {
                    "name": "read",
                    "kind": "agent",
                    "description": "Read it",
                    "capabilities": ["palmistry"],
                }
            ],
        }
        refused_step = await stack.http.post("/tasks", json={"pipeline": pipeline, "inputs": {}})
        accepted = await stack.http.post(
            "/tasks",
            json={
                "description": "Review the contract",
                "plan": plan("legal_review", "web_scraping"),
            },
        )

    assert refused.status_code == 422, refused.text
    error = refused.json()
    assert error["code"] == "unknown_capability", error
    known = ", ".join(sorted([*Capability, "legal_review"]))
    assert f"unknown capabilities astrology; use one of: {known}" in error["message"]
    assert error["details"] == [
        {
            "loc": ["body", "plan", "subtasks", 1, "required_capabilities"],
            "msg": f"unknown capability 'astrology': no live pool serves it; known: {known}",
            "type": "unknown_capability",
        }
    ]
    assert refused_step.status_code == 422, refused_step.text
    assert refused_step.json()["details"][0]["loc"] == [
        "body",
        "pipeline",
        "steps",
        "read",
        "capabilities",
    ]
    # A live profile's capability is known; so is a built-in nobody serves (it waits).
    assert accepted.status_code == 202, accepted.text
