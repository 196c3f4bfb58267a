"""`POST /tasks/estimate` on a real engine: a given plan, a planned one, and bad input."""

from __future__ import annotations

import uuid

from temporalio.testing import WorkflowEnvironment

from mahsm.api.main import create_app
from mahsm.estimates import defaults
from tests.api.conftest import StackFactory, api_settings, asgi_client, subtask
from tests.engine_harness import AGGREGATE, answer_rule, plan_rule

PRICES = {"input_per_mtok": 2.0, "output_per_mtok": 8.0}
SCENARIO = {
    "prices": PRICES,
    "rules": [
        plan_rule(
            "three parts",
            [
                subtask("fetch", "Fetch the figures"),
                subtask("sum", "Sum the figures", "fetch"),
                subtask("mean", "Average the figures", "fetch"),
            ],
        ),
        answer_rule("Fetch the figures", "figures=[1, 2]"),
        AGGREGATE,
    ],
}
GIVEN_PLAN = {
    "subtasks": [
        subtask("a", "First part", cap="web_scraping"),
        subtask("b", "Second part", "a", cap="web_scraping"),
    ]
}


async def test_a_given_plan_is_estimated_from_the_defaults_without_history(
    api_stack: StackFactory,
) -> None:
    async with api_stack(SCENARIO) as stack:
        response = await stack.http.post(
            "/tasks/estimate",
            json={
                "description": "Estimate a plan of two parts",
                "plan": GIVEN_PLAN,
                "options": {"max_iterations": 4},
            },
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["planned"] is False and body["planning_usage"] is None
    estimate = body["estimate"]
    assert [s["id"] for s in estimate["subtasks"]] == ["a", "b"]
    first = estimate["subtasks"][0]
    assert first["basis"] == "default" and first["model"] == "scripted/test"
    calls = first["figures"]["llm_calls"]
    assert calls == {"low": 1.0, "expected": defaults.AGENT_CALLS_EXPECTED, "high": 4.0}
    tokens_in = 2 * defaults.AGENT_CALL.input_tokens.expected
    tokens_out = 2 * defaults.AGENT_CALL.output_tokens.expected
    cost = (tokens_in * 2.0 + tokens_out * 8.0) / 1e6  # the scenario's declared prices
    assert abs(first["figures"]["cost_usd"]["expected"] - cost) < 1e-12
    # The given plan is not planned again; two subtasks are aggregated (one call).
    own = estimate["task_calls"]
    assert own["figures"]["llm_calls"]["expected"] == 1
    assert estimate["critical_path"] == ["a", "b"]
    agent_s = 2 * defaults.AGENT_CALL.seconds.expected
    assert estimate["total"]["duration_s"]["expected"] == (
        2 * agent_s + defaults.AGGREGATION_CALL.seconds.expected
    )


async def test_without_a_plan_the_planner_is_asked_once_and_its_cost_reported(
    api_stack: StackFactory,
) -> None:
    async with api_stack(SCENARIO) as stack:
        response = await stack.http.post(
            "/tasks/estimate", json={"description": "Work on three parts of the figures"}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        # Nothing ran: no task row, no call of an agent.
        assert await stack.engine.pool.fetchval("SELECT count(*) FROM tasks") == 0
    assert body["planned"] is True
    assert [s["id"] for s in body["plan"]["subtasks"]] == ["fetch", "sum", "mean"]
    usage = body["planning_usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["cost_usd"] == (usage["input_tokens"] * 2.0 + usage["output_tokens"] * 8.0) / 1e6
    estimate = body["estimate"]
    # The task would plan too: planning (up to two repairs) and aggregation.
    calls = estimate["task_calls"]["figures"]["llm_calls"]
    assert calls == {"low": 2.0, "expected": 2.0, "high": 4.0}
    assert estimate["critical_path"][0] == "fetch"


async def test_bad_input_is_a_422_naming_the_field(api_stack: StackFactory) -> None:
    cycle = {
        "subtasks": [
            subtask("a", "First part", "b"),
            subtask("b", "Second part", "a"),
        ]
    }
    cases = [
        ({"description": "short"}, "description"),
        ({"description": "A long enough task", "plan": cycle}, "plan"),
        ({"description": "A long enough task", "options": {"max_iterations": 0}}, "max_iterations"),
        ({"description": "A long enough task", "pipeline": {"name": "x"}}, "pipeline"),
    ]
    async with api_stack(SCENARIO) as stack:
        for body, field in cases:
            response = await stack.http.post("/tasks/estimate", json=body)
            assert response.status_code == 422, response.text
            assert field in response.text, response.text


async def test_without_a_task_worker_the_estimate_is_a_503_at_once(
    temporal_env: WorkflowEnvironment, database_url: str
) -> None:
    settings = api_settings(temporal_env, database_url, queue_prefix=f"none{uuid.uuid4().hex[:8]}")
    async with asgi_client(create_app(settings)) as http:
        response = await http.post("/tasks/estimate", json={"description": "Nobody runs this one"})
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["code"] == "no_task_worker" and "mahsm worker" in body["message"]
