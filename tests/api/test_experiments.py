"""`/experiments` on a real engine: start, read, list, serve; bad configs are one 422."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.api.conftest import StackFactory

PIPELINE = {
    "name": "qa",
    "inputs": {"q": "str", "mode": "str"},
    "steps": [{"name": "answer", "kind": "llm", "prompt": "Question: {q} mode={mode}"}],
}
SCENARIO = {"rules": [{"purpose": "any", "match": "mode=", "respond": {"content": "42"}}]}


def _body(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "api test",
        "target": {"pipeline": PIPELINE},
        "inputs": {"q": "x"},
        "grid": {"inputs.mode": ["a", "b"]},
        "mlflow": False,
    }
    body.update(extra)
    return body


async def _until_done(stack: Any, experiment_id: str) -> dict[str, Any]:
    for _ in range(300):
        response = await stack.http.get(f"/experiments/{experiment_id}")
        assert response.status_code == 200, response.text
        if response.json()["status"] != "running":
            return dict(response.json())
        await asyncio.sleep(0.1)
    raise AssertionError("experiment did not finish")


async def test_post_get_and_list_an_experiment(api_stack: StackFactory) -> None:
    async with api_stack(SCENARIO) as stack:
        response = await stack.http.post("/experiments", json=_body())
        assert response.status_code == 202, response.text
        accepted = response.json()
        assert len(accepted["configs"]) == 2
        state = await _until_done(stack, accepted["id"])
        listed = (await stack.http.get("/experiments")).json()["experiments"]
    assert state["status"] == "completed"
    assert [b["status"] for b in state["branches"]] == ["success", "success"]
    assert [s["config_id"] for s in state["summary"]] == accepted["configs"]
    assert {"id": accepted["id"], "name": "api test", "configs": 2}.items() <= listed[0].items()


async def test_invalid_configs_are_rejected_at_submit_naming_index_and_field(
    api_stack: StackFactory,
) -> None:
    async with api_stack(SCENARIO) as stack:
        unknown = await stack.http.post(
            "/experiments", json=_body(grid=None, configs=[{}, {"temprature": 0.2}])
        )
        out_of_range = await stack.http.post(
            "/experiments", json=_body(grid=None, configs=[{"temperature": 5}])
        )
        bad_input = await stack.http.post(
            "/experiments", json=_body(grid=None, configs=[{"inputs": {"mood": "x"}}])
        )
        bad_grid = await stack.http.post("/experiments", json=_body(grid={"colour": [1]}))
        missing = await stack.http.get("/experiments/experiment-nope")
    assert unknown.status_code == 422
    assert unknown.json()["details"][0]["loc"][:4] == ["body", "configs", 1, "temprature"]
    assert out_of_range.status_code == 422
    assert out_of_range.json()["details"][0]["loc"][:4] == ["body", "configs", 0, "temperature"]
    assert bad_input.status_code == 422
    assert "configs.0.inputs.mood: not an input" in bad_input.json()["message"]
    assert bad_grid.status_code == 422
    assert "grid.colour: not a config field" in bad_grid.json()["message"]
    assert missing.status_code == 404
    assert missing.json()["code"] == "experiment_not_found"


async def test_an_unknown_strategy_is_a_422_listing_the_known_ones(
    api_stack: StackFactory,
) -> None:
    async with api_stack(SCENARIO) as stack:
        response = await stack.http.post("/experiments", json=_body(strategy="fastest"))
    assert response.status_code == 422
    detail = response.json()["details"][0]
    assert detail["loc"][:2] == ["body", "strategy"]
    assert "known: " in detail["msg"] and "multi_branch, round_robin, shadow" in detail["msg"]


async def test_a_client_cannot_send_a_carried_state(api_stack: StackFactory) -> None:
    async with api_stack(SCENARIO) as stack:
        forged = {
            "experiment_id": "experiment-x",
            "name": "api test",
            "strategy": "round_robin",
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "served": 99,
        }
        response = await stack.http.post(
            "/experiments", json=_body(strategy="round_robin", carried_state=forged)
        )
    assert response.status_code == 422
    assert response.json()["details"][0]["loc"] == ["body", "carried_state"]


async def test_round_robin_requests_through_the_api(api_stack: StackFactory) -> None:
    async with api_stack(SCENARIO) as stack:
        body = _body(strategy="round_robin")
        experiment_id = (await stack.http.post("/experiments", json=body)).json()["id"]
        served = []
        for _ in range(3):
            response = await stack.http.post(
                f"/experiments/{experiment_id}/requests", json={"inputs": {"q": "y"}}
            )
            assert response.status_code == 200, response.text
            served.append(response.json()["branch"]["config"]["inputs"]["mode"])
        assert (await stack.http.post(f"/experiments/{experiment_id}/close")).status_code == 202
        state = await _until_done(stack, experiment_id)
        refused = await stack.http.post(f"/experiments/{experiment_id}/requests", json={})
    assert served == ["a", "b", "a"]
    assert state["served"] == 3
    assert refused.status_code in (404, 409)


async def test_the_python_client_runs_serves_and_lists(api_stack: StackFactory) -> None:
    import httpx

    from mahsm.client.experiments import ExperimentsClient
    from mahsm.errors import InvalidRequest
    from mahsm.experiments.models import ExperimentRequest

    async with api_stack(SCENARIO) as stack:
        transport = httpx.ASGITransport(app=stack.app)
        async with ExperimentsClient("http://api", transport=transport) as client:
            state = await client.run(ExperimentRequest.model_validate(_body()))
            rotation = await client.start(
                ExperimentRequest.model_validate(_body(strategy="round_robin"))
            )
            served = await client.serve(rotation, {"q": "z"})
            await client.close_experiment(rotation)
            closed = await client.wait(rotation)
            listed = await client.list()
            try:
                await client.start(ExperimentRequest.model_construct(**_body(grid=None)))
            except InvalidRequest as error:
                refused = str(error)
    assert state.status == "completed" and len(state.branches) == 2
    assert served.branch.config.inputs == {"mode": "a"} and served.branch.output == "42"
    assert closed.served == 1
    assert {item["id"] for item in listed} >= {state.experiment_id, rotation}
    assert "configs" in refused


async def test_events_stream_states_until_the_end(api_stack: StackFactory) -> None:
    import json

    async with api_stack(SCENARIO) as stack:
        experiment_id = (await stack.http.post("/experiments", json=_body())).json()["id"]
        response = await stack.http.get(f"/experiments/{experiment_id}/events")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [block for block in response.text.split("\n\n") if block]
    assert events[-1].startswith("event: end")
    states = [json.loads(e.split("data: ", 1)[1]) for e in events if e.startswith("event: state")]
    assert states[-1]["status"] == "completed"
    assert len(states[-1]["branches"]) == 2
