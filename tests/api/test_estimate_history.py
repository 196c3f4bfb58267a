"""Estimates learn from finished tasks, show in the approval step, and meet the actuals.

Scripted tasks with known cost: the scripted model counts words as tokens and the scenario
declares its prices, so every run of the same plan costs the same.
"""

from __future__ import annotations

from typing import Any

from tests.api.conftest import TERMINAL, ApiStack, StackFactory, subtask
from tests.engine_harness import AGGREGATE, answer_rule

MODEL = "scripted/learn"
SCENARIO = {
    "prices": {"input_per_mtok": 3.0, "output_per_mtok": 15.0},
    "rules": [
        answer_rule(
            "Collect the readings",
            "readings: " + " ".join(f"r{i}" for i in range(120)),
            latency_ms=150,
        ),
        answer_rule("Summarise the readings", "summary: the readings look fine", latency_ms=50),
        AGGREGATE,
    ],
}
PLAN = {
    "subtasks": [
        subtask("collect", "Collect the readings", cap="web_scraping"),
        subtask("summary", "Summarise the readings", "collect", cap="web_scraping"),
    ]
}
# The documented bound (docs/estimates.md) for scripted tasks once history exists.
TOKEN_ERROR = 0.25
DURATION_ERROR = 1.0


def task_body(**options: Any) -> dict[str, Any]:
    return {
        "description": "Collect and summarise the readings",
        "plan": PLAN,
        "options": {"model": MODEL, **options},
    }


async def estimate(stack: ApiStack) -> dict[str, Any]:
    response = await stack.http.post("/tasks/estimate", json=task_body())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()["estimate"]
    return body


async def run(stack: ApiStack, **options: Any) -> dict[str, Any]:
    response = await stack.http.post("/tasks", json=task_body(**options))
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    await stack.wait_status(task_id, TERMINAL)
    await stack.wait_closed(task_id)
    await stack.wait_row(task_id, "completed")
    stored = await stack.http.get(f"/tasks/{task_id}")
    body: dict[str, Any] = stored.json()
    return body


def tokens(figures: dict[str, Any]) -> float:
    return float(figures["input_tokens"]["expected"] + figures["output_tokens"]["expected"])


async def test_learned_figures_move_the_estimate_to_the_actuals(api_stack: StackFactory) -> None:
    async with api_stack(SCENARIO) as stack:
        before = await estimate(stack)
        assert {s["basis"] for s in before["subtasks"]} == {"default"}
        for _ in range(3):
            await run(stack)
        learned = await estimate(stack)
        assert {s["basis"] for s in learned["subtasks"]} == {"history"}
        assert learned["subtasks"][0]["samples"] == 6  # both subtasks of three tasks
        assert learned["task_calls"]["basis"] == "history"
        # A task that estimates itself reports the estimate next to what it spent.
        done = await run(stack, estimate=True)
        usage = await stack.http.get("/usage", params={"group_by": "task"})
    task = done["task"]
    actual = task["estimate"]["actual"]
    assert actual is not None and actual["llm_calls"] == 3  # two agents' answers, aggregation
    spent = task["usage"]
    assert actual["input_tokens"] == spent["input_tokens"]
    assert actual["cost_usd"] == spent["cost_usd"] > 0
    assert abs(actual["tokens_error"]) <= TOKEN_ERROR
    assert abs(actual["cost_error"]) <= TOKEN_ERROR
    assert abs(actual["duration_error"]) <= DURATION_ERROR
    real = actual["input_tokens"] + actual["output_tokens"]
    assert abs(tokens(learned["total"]) - real) < abs(tokens(before["total"]) - real)
    real_cost = actual["cost_usd"]
    assert abs(learned["total"]["cost_usd"]["expected"] - real_cost) < abs(
        before["total"]["cost_usd"]["expected"] - real_cost
    )
    # GET /usage puts the estimate next to the actual cost of the estimated task.
    rows = {row["key"]: row for row in usage.json()["rows"]}
    row = rows[task["id"]]
    assert row["estimate"]["tasks"] == 1
    assert row["estimate"]["actual_cost_usd"] == real_cost
    assert row["estimate"]["expected_cost_usd"] == task["estimate"]["total"]["cost_usd"]["expected"]
    assert usage.json()["total"]["estimate"]["tasks"] == 1


async def test_a_task_awaiting_approval_shows_its_estimate(api_stack: StackFactory) -> None:
    async with api_stack(SCENARIO) as stack:
        response = await stack.http.post("/tasks", json=task_body(require_approval=True))
        task_id = response.json()["task_id"]
        waiting = await stack.wait_until(
            task_id,
            lambda b: b["task"]["status"] == "awaiting_approval" and b["task"]["estimate"],
        )
        shown = waiting["task"]["estimate"]
        assert [s["id"] for s in shown["subtasks"]] == ["collect", "summary"]
        assert shown["actual"] is None and shown["total"]["cost_usd"]["expected"] > 0
        approved = await stack.http.post(f"/tasks/{task_id}/approve", json={"approved": True})
        assert approved.status_code == 200, approved.text
        await stack.wait_closed(task_id)
        await stack.wait_row(task_id, "completed")
        ended = (await stack.http.get(f"/tasks/{task_id}")).json()["task"]["estimate"]
    assert ended["subtasks"] == shown["subtasks"]  # the estimate approved, with the actuals
    assert ended["actual"]["cost_usd"] > 0 and ended["actual"]["llm_calls"] == 3
