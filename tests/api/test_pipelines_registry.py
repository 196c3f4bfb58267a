"""`/pipelines`: register (versions, idempotence, 409), read, list; runs by `pipeline_ref`.

Real Postgres and the real Temporal dev server; runs go to a queue prefix no worker polls
(what is checked is what was started, from the workflow's history).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from mahsm.api.main import create_app
from tests.api.conftest import api_settings, asgi_client

KEYS = {"key-ann": "ann", "key-bob": "bob"}
ANN = {"Authorization": "Bearer key-ann"}
BOB = {"Authorization": "Bearer key-bob"}


def pipeline(name: str, prompt: str = "Summarise {text}", **head: Any) -> dict[str, Any]:
    return {
        "name": name,
        "inputs": {"text": "str"},
        "steps": [{"name": "summary", "kind": "llm", "prompt": prompt}],
        "outputs": {"summary": "{summary}"},
        **head,
    }


@pytest.fixture
async def http(temporal_env: WorkflowEnvironment, database_url: str) -> Any:
    prefix = f"pr{uuid.uuid4().hex[:8]}"
    settings = api_settings(temporal_env, database_url, queue_prefix=prefix, api_keys=KEYS)
    async with asgi_client(create_app(settings)) as client:
        yield client


def _name() -> str:
    return f"summarise-{uuid.uuid4().hex[:6]}"


async def test_versions_are_numbered_and_the_same_definition_is_idempotent(
    http: httpx.AsyncClient,
) -> None:
    name = _name()
    first = await http.post("/pipelines", json=pipeline(name), headers=ANN)
    again = await http.post("/pipelines", json=pipeline(name), headers=BOB)
    second = await http.post("/pipelines", json=pipeline(name, "Shorten {text}"), headers=BOB)
    assert (first.status_code, again.status_code, second.status_code) == (201, 200, 201)
    assert first.json()["version"] == "1" and again.json()["version"] == "1"
    assert first.json()["created_by"] == "ann" and again.json()["created_by"] == "ann"
    body = second.json()
    assert body["version"] == "2" and body["created_by"] == "bob"
    assert body["definition"]["version"] == "2"
    assert [v["version"] for v in body["versions"]] == ["2", "1"]

    latest = await http.get(f"/pipelines/{name}", headers=ANN)
    assert latest.json()["version"] == "2"
    assert latest.json()["definition"]["steps"][0]["prompt"] == "Shorten {text}"
    pinned = await http.get(f"/pipelines/{name}@1", headers=ANN)
    by_query = await http.get(f"/pipelines/{name}", params={"version": "1"}, headers=ANN)
    for response in (pinned, by_query):
        assert response.status_code == 200
        assert response.json()["definition"]["steps"][0]["prompt"] == "Summarise {text}"


async def test_a_taken_version_with_another_definition_is_409(http: httpx.AsyncClient) -> None:
    name = _name()
    created = await http.post("/pipelines", json=pipeline(name, version="2024.1"), headers=ANN)
    same = await http.post("/pipelines", json=pipeline(name, version="2024.1"), headers=ANN)
    other = await http.post(
        "/pipelines", json=pipeline(name, "Shorten {text}", version="2024.1"), headers=ANN
    )
    assert (created.status_code, same.status_code) == (201, 200)
    assert other.status_code == 409
    assert other.json()["code"] == "pipeline_version_exists"
    assert f"{name}@2024.1" in other.json()["message"]
    # A numbered registration after a named version starts at 1.
    numbered = await http.post("/pipelines", json=pipeline(name, "Shorten {text}"), headers=ANN)
    assert numbered.json()["version"] == "1"


async def test_registration_is_checked_like_a_run(http: httpx.AsyncClient) -> None:
    bad = pipeline(_name(), "Summarise {txt}")
    bad["steps"].append({"name": "count", "kind": "tool", "tool": "abacus"})
    response = await http.post("/pipelines", json=bad, headers=ANN)
    assert response.status_code == 422
    locs = [d["loc"] for d in response.json()["details"]]
    assert ["body", "steps", "summary", "prompt"] in locs
    assert ["body", "steps", "count", "tool"] in locs
    listed = await http.get("/pipelines", params={"limit": 100}, headers=ANN)
    assert bad["name"] not in [p["name"] for p in listed.json()["pipelines"]]


async def test_list_pages_through_names_with_their_latest_version(
    http: httpx.AsyncClient,
) -> None:
    prefix = f"list-{uuid.uuid4().hex[:6]}"
    for index in range(3):
        await http.post("/pipelines", json=pipeline(f"{prefix}-{index}"), headers=ANN)
    await http.post("/pipelines", json=pipeline(f"{prefix}-1", "Shorten {text}"), headers=ANN)
    seen: dict[str, Any] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await http.get("/pipelines", params=params, headers=ANN)).json()
        assert len(page["pipelines"]) <= 2
        seen |= {p["name"]: p for p in page["pipelines"]}
        cursor = page["next_cursor"]
        if cursor is None:
            break
    mine = {name: item for name, item in seen.items() if name.startswith(prefix)}
    assert sorted(mine) == [f"{prefix}-0", f"{prefix}-1", f"{prefix}-2"]
    assert mine[f"{prefix}-1"]["latest_version"] == "2"
    assert mine[f"{prefix}-1"]["versions"] == 2


async def test_unknown_names_and_versions_are_404_naming_what_exists(
    http: httpx.AsyncClient,
) -> None:
    name = _name()
    await http.post("/pipelines", json=pipeline(name), headers=ANN)
    missing = await http.get("/pipelines/never-registered", headers=ANN)
    no_version = await http.get(f"/pipelines/{name}@7", headers=ANN)
    anonymous = await http.get(f"/pipelines/{name}")
    assert missing.status_code == 404 and missing.json()["code"] == "pipeline_not_found"
    assert "registered: " in missing.json()["message"]  # the names that exist
    assert no_version.status_code == 404 and "versions: 1" in no_version.json()["message"]
    assert anonymous.status_code == 401


def _started_request(env: WorkflowEnvironment, task_id: str) -> Any:
    async def read() -> Any:
        history = await env.client.get_workflow_handle(task_id).fetch_history()
        start = history.events[0].workflow_execution_started_event_attributes
        return env.client.data_converter.payload_converter.from_payload(start.input.payloads[0])

    return read()


async def test_a_run_by_ref_embeds_the_registered_definition(
    http: httpx.AsyncClient, temporal_env: WorkflowEnvironment
) -> None:
    name = _name()
    await http.post("/pipelines", json=pipeline(name, description="Summarise a text"), headers=ANN)
    await http.post("/pipelines", json=pipeline(name, "Shorten {text}"), headers=ANN)
    latest = await http.post(
        "/tasks", json={"pipeline_ref": name, "inputs": {"text": "abc"}}, headers=ANN
    )
    pinned = await http.post(
        "/tasks", json={"pipeline_ref": f"{name}@1", "inputs": {"text": "abc"}}, headers=ANN
    )
    bad_inputs = await http.post(
        "/tasks", json={"pipeline_ref": f"{name}@1", "inputs": {"text": 3}}, headers=ANN
    )
    no_version = await http.post(
        "/tasks", json={"pipeline_ref": f"{name}@9", "inputs": {"text": "abc"}}, headers=ANN
    )
    no_name = await http.post(
        "/tasks", json={"pipeline_ref": "never-registered", "inputs": {}}, headers=ANN
    )
    assert latest.status_code == 202 and pinned.status_code == 202, (latest.text, pinned.text)
    first = await _started_request(temporal_env, latest.json()["task_id"])
    second = await _started_request(temporal_env, pinned.json()["task_id"])
    assert first["pipeline"]["version"] == "2"
    assert first["pipeline"]["steps"][0]["prompt"] == "Shorten {text}"
    assert first["description"] == f"Run pipeline {name}" and first["user_id"] == "ann"
    assert second["pipeline"]["version"] == "1"
    assert second["description"] == "Summarise a text"
    assert bad_inputs.status_code == 422
    assert bad_inputs.json()["details"][0]["loc"] == ["body", "inputs", "text"]
    assert no_version.status_code == 422
    assert "versions: 2, 1" in no_version.json()["message"]
    assert no_name.status_code == 422
    assert no_name.json()["details"][0]["loc"] == ["body", "pipeline_ref"]
    assert "registered: " in no_name.json()["message"]
    for response in (latest, pinned):
        handle = temporal_env.client.get_workflow_handle(response.json()["task_id"])
        await handle.terminate("test over")


async def test_concurrent_registrations_of_one_name_take_distinct_versions(
    http: httpx.AsyncClient,
) -> None:
    async def register_all(bodies: list[dict[str, Any]]) -> list[httpx.Response]:
        return await asyncio.gather(
            *(http.post("/pipelines", json=body, headers=ANN) for body in bodies)
        )

    name = _name()
    same = await register_all([pipeline(name) for _ in range(4)])
    assert sorted(a.status_code for a in same) == [200, 200, 200, 201], [a.text for a in same]
    assert {a.json()["version"] for a in same} == {"1"}

    other = _name()
    different = await register_all([pipeline(other, f"Variant {i} of {{text}}") for i in range(4)])
    assert all(a.status_code == 201 for a in different), [a.text for a in different]
    assert sorted(a.json()["version"] for a in different) == ["1", "2", "3", "4"]
