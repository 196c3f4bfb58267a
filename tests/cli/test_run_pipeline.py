"""`mahsm run` and `mahsm pipelines` end to end: the real API on a real engine running the
shipped example (examples/pipelines/ticket_triage.yaml) on the bundled demo scenario."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from mahsm.cli import common as cli_common
from mahsm.cli.main import app
from tests.cli.api_harness import UI_URL, ServedApi

EXAMPLE = str(Path(__file__).parents[2] / "examples/pipelines/ticket_triage.yaml")
TICKET = "ticket=I was charged twice for my subscription this month."


@pytest.fixture(autouse=True)
def wide_console() -> None:
    cli_common.console.width = 200
    cli_common.errors.width = 200


async def mahsm(*args: str) -> Result:
    """Run the CLI in a thread: it runs its own event loop, the engine runs on ours."""
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


async def test_run_wait_json_prints_the_final_state_with_outputs(api: ServedApi) -> None:
    result = await mahsm(
        "run", EXAMPLE, "-i", TICKET, "-i", "customer=Ada", "--wait", "--json", "--api", api.url
    )

    assert result.exit_code == 0, result.output
    state = json.loads(result.output)  # nothing but JSON on stdout
    assert state["status"] == "completed", state["error"]
    assert state["pipeline"] == "ticket-triage@1"
    outputs = state["outputs"]
    assert outputs["category"] == "billing" and outputs["priority"] == 1
    assert outputs["reply"].startswith("Dear Ada,\n\nThank you for telling us.")
    assert outputs["tone"] == "friendly" and outputs["total"] == "42"
    assert outputs["review"].startswith("Ready to send")
    kinds = {s["subtask"]["id"]: s["subtask"]["kind"] for s in state["subtasks"]}
    assert kinds == {
        "classify": "llm",
        "draft": "llm",
        "tone": "llm",
        "total": "tool",
        "checks": "parallel",
        "final": "transform",
        "review": "agent",
    }
    classify = next(s for s in state["subtasks"] if s["subtask"]["id"] == "classify")
    assert classify["result"]["value"] == {"category": "billing", "urgent": True}
    assert classify["result"]["model"]


async def test_run_without_wait_prints_the_task_id_and_links(api: ServedApi) -> None:
    result = await mahsm("run", EXAMPLE, "-i", TICKET, "-i", "customer=Ada", "--api", api.url)

    assert result.exit_code == 0, result.output
    task_id = next(w for w in result.output.split() if w.startswith("task-"))
    assert f"{UI_URL}/namespaces/default/workflows/{task_id}" in result.output
    assert f"mahsm status {task_id}" in result.output


async def test_registered_pipelines_run_by_name(api: ServedApi, tmp_path: Path) -> None:
    registered = await mahsm("pipelines", "register", EXAMPLE, "--api", api.url)
    again = await mahsm("pipelines", "register", EXAMPLE, "--api", api.url)
    listed = await mahsm("pipelines", "list", "--json", "--api", api.url)
    shown = await mahsm("pipelines", "show", "ticket-triage@1", "--api", api.url)
    result = await mahsm(
        "run", "ticket-triage@1", "-i", TICKET, "-i", "customer=Bo", "--wait", "--json",
        "--api", api.url,
    )  # fmt: skip
    bad_input = await mahsm("run", "ticket-triage", "-i", "customer=Bo", "--api", api.url)
    unknown = await mahsm("run", "no-such-pipeline", "-i", "a=b", "--api", api.url)

    assert registered.exit_code == 0 and "Registered ticket-triage@1" in registered.output
    assert again.exit_code == 0 and "ticket-triage@1" in again.output
    names = [p["name"] for p in json.loads(listed.output)["pipelines"]]
    assert "ticket-triage" in names
    assert "function: examples.pipelines.shape_reply" in shown.output
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["outputs"]["reply"].startswith("Dear Bo,")
    assert bad_input.exit_code == 2
    assert "missing input(s) of pipeline 'ticket-triage': ticket (str)" in bad_input.output
    assert unknown.exit_code == 3 and "No pipeline 'no-such-pipeline'" in unknown.output
