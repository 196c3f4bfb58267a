"""Pipeline runs are checked at the edge: one 422 naming the step and field, nothing started.

The app talks to the real Temporal dev server and Postgres, on a queue prefix no worker polls;
after every refused request, Temporal's visibility is asked which workflows the prefix has:
only the one valid run submitted last.
"""

from __future__ import annotations

import asyncio
import copy
import sys
import uuid
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from mahsm.api.main import create_app
from mahsm.queues import tasks_queue
from tests.api.conftest import api_settings, asgi_client

VALID: dict[str, Any] = {
    "name": "triage",
    "inputs": {"ticket": "str", "count": "int"},
    "steps": [
        {"name": "draft", "kind": "llm", "prompt": "Draft a reply to {ticket}"},
        {
            "name": "checks",
            "kind": "parallel",
            "steps": [
                {"name": "tone", "kind": "llm", "prompt": "Rate the tone of {draft}"},
                {
                    "name": "total",
                    "kind": "tool",
                    "tool": "calculator",
                    "args": {"expression": "6*7"},
                },
            ],
        },
        {"name": "final", "kind": "transform", "function": "examples.pipelines.shape_reply"},
    ],
    "outputs": {"reply": "{final.reply}", "tone": "{checks.tone}"},
}
INPUTS = {"ticket": "I was charged twice", "count": 2}


def _with(change: Any) -> dict[str, Any]:
    pipeline = copy.deepcopy(VALID)
    change(pipeline)
    return pipeline


def _set(path: list[Any], value: Any) -> Any:
    def change(pipeline: dict[str, Any]) -> None:
        target = pipeline
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return change


# (case, body, the loc expected among the details, words of its message)
CASES: list[tuple[str, dict[str, Any], list[Any], str]] = [
    (
        "unknown kind",
        {"pipeline": _with(_set(["steps", 0, "kind"], "sql")), "inputs": INPUTS},
        ["body", "pipeline", "steps", "draft", "kind"],
        "'sql'",
    ),
    (
        "missing prompt",
        {"pipeline": _with(lambda p: p["steps"][0].pop("prompt")), "inputs": INPUTS},
        ["body", "pipeline", "steps", "draft", "prompt"],
        "Field required",
    ),
    (
        "placeholder naming nothing",
        {"pipeline": _with(_set(["steps", 0, "prompt"], "Reply to {tikcet}")), "inputs": INPUTS},
        ["body", "pipeline", "steps", "draft", "prompt"],
        "{tikcet} names no input or step",
    ),
    (
        "placeholder naming a later step",
        {"pipeline": _with(_set(["steps", 0, "prompt"], "Reply to {final}")), "inputs": INPUTS},
        ["body", "pipeline", "steps", "draft", "prompt"],
        "does not run before it",
    ),
    (
        "output naming nothing",
        {"pipeline": _with(_set(["outputs", "reply"], "{nothing}")), "inputs": INPUTS},
        ["body", "pipeline", "outputs", "reply"],
        "names no input or step",
    ),
    (
        "duplicate names",
        {"pipeline": _with(_set(["steps", 1, "steps", 0, "name"], "draft")), "inputs": INPUTS},
        ["body", "pipeline", "steps", "draft", "name"],
        "names must be unique",
    ),
    (
        "cycle",
        {
            "pipeline": _with(
                lambda p: (
                    p["steps"][0].update(depends_on=["final"]),
                    p["steps"][0].update(prompt="Draft"),
                )
            ),
            "inputs": INPUTS,
        },
        ["body", "pipeline", "steps"],
        "cycle",
    ),
    (
        "unknown dependency",
        {"pipeline": _with(_set(["steps", 2, "depends_on"], ["drafts"])), "inputs": INPUTS},
        ["body", "pipeline", "steps", "final", "depends_on"],
        "names no step 'drafts'",
    ),
    (
        "unknown tool",
        {"pipeline": _with(_set(["steps", 1, "steps", 1, "tool"], "abacus")), "inputs": INPUTS},
        ["body", "pipeline", "steps", "total", "tool"],
        "no tool named 'abacus'",
    ),
    (
        "unknown transform",
        {
            "pipeline": _with(_set(["steps", 2, "function"], "examples.pipelines.nope")),
            "inputs": INPUTS,
        },
        ["body", "pipeline", "steps", "final", "function"],
        "has no 'nope'",
    ),
    (
        "transform outside MAHSM_CODE_MODULES",
        {"pipeline": _with(_set(["steps", 2, "function"], "os.system")), "inputs": INPUTS},
        ["body", "pipeline", "steps", "final", "function"],
        "not in MAHSM_CODE_MODULES",
    ),
    (
        "DSPy signature class outside MAHSM_CODE_MODULES",
        {
            "pipeline": _with(
                _set(
                    ["steps", 0],
                    {"name": "draft", "kind": "signature", "signature_class": "this.S"},
                )
            ),
            "inputs": INPUTS,
        },
        ["body", "pipeline", "steps", "draft", "signature_class"],
        "not in MAHSM_CODE_MODULES",
    ),
    (
        "unknown middleware",
        {"description": "Summarise the notes", "options": {"middleware": ["pii", "piii"]}},
        ["body", "options", "middleware"],
        "unknown middleware 'piii'",
    ),
    (
        "unknown model provider",
        {
            "pipeline": _with(_set(["steps", 0, "model"], ["scripted/demo", "acme/gpt-9"])),
            "inputs": INPUTS,
        },
        ["body", "pipeline", "steps", "draft", "model"],
        "unknown provider 'acme'",
    ),
    (
        "missing input",
        {"pipeline": VALID, "inputs": {"ticket": "hi"}},
        ["body", "inputs", "count"],
        "missing; give a int value",
    ),
    (
        "input of the wrong type",
        {"pipeline": VALID, "inputs": {**INPUTS, "count": "two"}},
        ["body", "inputs", "count"],
        "expected int, got str",
    ),
    (
        "undeclared input",
        {"pipeline": VALID, "inputs": {**INPUTS, "extra": 1}},
        ["body", "inputs", "extra"],
        "not an input of pipeline 'triage'",
    ),
    (
        "plan and pipeline",
        {
            "pipeline": VALID,
            "inputs": INPUTS,
            "plan": {
                "subtasks": [
                    {"id": "a", "description": "A step", "required_capabilities": ["data_analysis"]}
                ]
            },
        },
        ["body", "plan"],
        "either plan or pipeline",
    ),
    (
        "pipeline and pipeline_ref",
        {"pipeline": VALID, "pipeline_ref": "triage", "inputs": INPUTS},
        ["body", "pipeline_ref"],
        "either pipeline (inline) or pipeline_ref",
    ),
    (
        "unknown pipeline_ref",
        {"pipeline_ref": "never-registered@3", "inputs": INPUTS},
        ["body", "pipeline_ref"],
        "no pipeline named 'never-registered'",
    ),
    (
        "inputs without a pipeline",
        {"description": "A task with stray inputs", "inputs": INPUTS},
        ["body", "inputs"],
        "inputs are for pipelines",
    ),
    (
        "no description and no pipeline",
        {"user_id": "ann"},
        ["body", "description"],
        "Field required",
    ),
]


@pytest.fixture
async def refusing_api(temporal_env: WorkflowEnvironment, database_url: str) -> Any:
    prefix = f"pv{uuid.uuid4().hex[:8]}"
    app = create_app(api_settings(temporal_env, database_url, queue_prefix=prefix))
    async with asgi_client(app) as http:
        yield http, prefix


async def _started(env: WorkflowEnvironment, prefix: str) -> list[str]:
    query = f"TaskQueue = '{tasks_queue(prefix)}'"
    return [w.id async for w in env.client.list_workflows(query)]


async def test_every_problem_is_one_422_naming_step_and_field_and_nothing_starts(
    refusing_api: tuple[httpx.AsyncClient, str], temporal_env: WorkflowEnvironment
) -> None:
    http, prefix = refusing_api
    for case, body, loc, words in CASES:
        response = await http.post("/tasks", json=body)
        assert response.status_code == 422, (case, response.text)
        error = response.json()
        assert error["code"] == "validation_error", case
        found = [d for d in error["details"] if d["loc"] == loc]
        assert found, (case, error["details"])
        assert words in found[0]["msg"], (case, found[0]["msg"])
        assert ".".join(str(p) for p in loc) in error["message"], (case, error["message"])

    # The one valid run starts; visibility then lists it, and nothing else, on this prefix.
    accepted = await http.post("/tasks", json={"pipeline": VALID, "inputs": INPUTS})
    assert accepted.status_code == 202, accepted.text
    task_id = accepted.json()["task_id"]
    started: list[str] = []
    for _ in range(100):  # visibility is eventually consistent
        started = await _started(temporal_env, prefix)
        if started:
            break
        await asyncio.sleep(0.1)
    assert started == [task_id]
    await temporal_env.client.get_workflow_handle(task_id).terminate("test over")


async def test_code_outside_the_allowed_packages_is_not_even_imported(
    refusing_api: tuple[httpx.AsyncClient, str],
) -> None:
    http, _ = refusing_api
    assert "this" not in sys.modules  # importing `this` prints; the check must come first
    for function in ("this.s", "this"):
        pipeline = _with(_set(["steps", 2, "function"], function))
        response = await http.post("/tasks", json={"pipeline": pipeline, "inputs": INPUTS})
        assert response.status_code == 422, response.text
        assert "MAHSM_CODE_MODULES" in response.text or "import path" in response.text
    assert "this" not in sys.modules


async def test_all_problems_of_one_pipeline_come_in_one_answer(
    refusing_api: tuple[httpx.AsyncClient, str],
) -> None:
    http, _ = refusing_api
    pipeline = _with(_set(["steps", 0, "prompt"], "Reply to {tikcet}"))
    pipeline["steps"][1]["steps"][1]["tool"] = "abacus"
    response = await http.post("/tasks", json={"pipeline": pipeline, "inputs": {"ticket": 1}})
    assert response.status_code == 422
    locs = [d["loc"] for d in response.json()["details"]]
    assert ["body", "pipeline", "steps", "draft", "prompt"] in locs
    assert ["body", "pipeline", "steps", "total", "tool"] in locs
    assert ["body", "inputs", "ticket"] in locs
    assert ["body", "inputs", "count"] in locs


async def test_a_pipeline_run_needs_no_description(
    refusing_api: tuple[httpx.AsyncClient, str], temporal_env: WorkflowEnvironment
) -> None:
    http, _ = refusing_api
    response = await http.post("/tasks", json={"pipeline": VALID, "inputs": INPUTS})
    assert response.status_code == 202, response.text
    handle = temporal_env.client.get_workflow_handle(response.json()["task_id"])
    history = await handle.fetch_history()
    start = history.events[0].workflow_execution_started_event_attributes
    (payload,) = start.input.payloads
    request = temporal_env.client.data_converter.payload_converter.from_payload(payload)
    assert request["description"] == "Run pipeline triage"
    assert request["pipeline"]["name"] == "triage"  # the definition is in the history
    await handle.terminate("test over")
