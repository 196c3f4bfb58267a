"""A pipeline run read through `GET /tasks/{id}`: steps shown like subtasks (kind, value, model,
detections, usage), the task's pipeline and outputs, both live and from Postgres."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import TERMINAL, StackFactory

SCENARIO: dict[str, Any] = {
    "rules": [
        {
            "purpose": "step",
            "subtask": "classify",
            "respond": {"content": '{"label": "billing"}'},
        },
        {"purpose": "step", "subtask": "slow", "latency_ms": 1500, "respond": {"content": "ok"}},
    ]
}
PIPELINE = {
    "name": "views",
    "version": "7",
    "inputs": {"text": "str"},
    "steps": [
        {
            "name": "classify",
            "kind": "llm",
            "prompt": "Classify {text}",
            "response_schema": {"type": "object", "properties": {"label": {"type": "string"}}},
        },
        {"name": "slow", "kind": "llm", "prompt": "Wait for {classify.label}"},
        {"name": "count", "kind": "tool", "tool": "calculator", "args": {"expression": "1+1"}},
    ],
    "outputs": {"label": "{classify.label}", "count": "{count}"},
}


async def test_steps_show_kind_value_and_model_live_and_stored(api_stack: StackFactory) -> None:
    async with api_stack(SCENARIO) as stack:
        accepted = await stack.http.post(
            "/tasks", json={"pipeline": PIPELINE, "inputs": {"text": "a double charge"}}
        )
        assert accepted.status_code == 202, accepted.text
        task_id = accepted.json()["task_id"]

        def slow_running(body: dict[str, Any]) -> bool:
            steps = {s["id"]: s for s in body["subtask_results"]}
            return "slow" in steps and steps["slow"]["status"] == "running"

        live = await stack.wait_until(task_id, slow_running)
        await stack.wait_status(task_id, TERMINAL)
        await stack.wait_row(task_id, "completed")
        stored = (await stack.http.get(f"/tasks/{task_id}")).json()

    assert live["task"]["pipeline"] == "views@7" and live["task"]["outputs"] is None
    steps = {s["id"]: s for s in live["subtask_results"]}
    assert {name: s["kind"] for name, s in steps.items()} == {
        "classify": "llm",
        "slow": "llm",
        "count": "tool",
    }
    assert steps["classify"]["value"] == {"label": "billing"}
    assert steps["classify"]["model"] and steps["classify"]["detections"] == {}

    task = stored["task"]
    assert task["status"] == "completed"
    assert task["pipeline"] == "views@7"
    assert task["outputs"] == {"label": "billing", "count": "2"}
    assert task["description"] == "Run pipeline views"
    steps = {s["id"]: s for s in stored["subtask_results"]}
    assert steps["classify"]["kind"] == "llm" and steps["count"]["kind"] == "tool"
    assert steps["classify"]["value"] == {"label": "billing"}
    assert steps["slow"]["output"] == "ok" and steps["slow"]["model"]
    assert steps["slow"]["usage"]["output_tokens"] > 0
