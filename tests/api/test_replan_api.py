"""Replanning through the API: the option, its bounds, and the revisions in `GET /tasks/{id}`."""

from __future__ import annotations

from pathlib import Path

from mahsm.client.models import task_state_from_api
from tests.api.conftest import TERMINAL, StackFactory
from tests.workflows.test_replan import DESCRIPTION, REVISION, replan_rule, scenario


async def test_revisions_show_live_and_from_postgres_and_bad_options_are_422(
    api_stack: StackFactory, tmp_path: Path
) -> None:
    async with api_stack(scenario(tmp_path / "calls.jsonl", replan_rule(REVISION))) as stack:
        too_many = await stack.http.post(
            "/tasks",
            json={"description": DESCRIPTION, "options": {"replan": {"max_replans": 9}}},
        )
        response = await stack.http.post(
            "/tasks",
            json={"description": DESCRIPTION, "options": {"replan": {"max_replans": 1}}},
        )
        assert response.status_code == 202, response.text
        task_id = response.json()["task_id"]
        live = await stack.wait_status(task_id, TERMINAL)
        await stack.wait_row(task_id, "completed")
        stored = (await stack.http.get(f"/tasks/{task_id}")).json()

    assert too_many.status_code == 422
    assert "body.options.replan.max_replans" in too_many.json()["message"]
    for body in (live, stored):
        task = body["task"]
        assert task["status"] == "completed"
        (revision,) = task["revisions"]
        assert revision["number"] == 1 and revision["failed"] == ["analyze", "report"]
        assert revision["reason"].startswith("subtask 'analyze' failed")
        assert revision["added"] == ["analyze_alt", "report_alt"]
        statuses = {s["id"]: s["status"] for s in body["subtask_results"]}
        assert statuses["analyze"] == "failed" and statuses["report_alt"] == "completed"
    # The Python client's REST mapping carries them too (docs/replanning.md's example).
    state = task_state_from_api(stored["task"], stored["subtask_results"])
    assert [r.added for r in state.revisions] == [["analyze_alt", "report_alt"]]
