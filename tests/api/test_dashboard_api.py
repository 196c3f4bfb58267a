"""The endpoints behind the dashboard: the page's files, /ui/config, /ui/yaml, GET /logs,
subtask transcripts and GET /tasks?q=, on the real engine (Temporal dev server, Postgres)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.api.conftest import StackFactory, subtask
from tests.engine_harness import AGGREGATE, answer_rule, plan_rule

KEYS = {"key-ann": "ann", "key-bob": "bob"}
ANN = {"Authorization": "Bearer key-ann"}
BOB = {"Authorization": "Bearer key-bob"}

COUNTING = {
    "rules": [
        plan_rule(
            "count",
            [subtask("count", "Count with the calculator"), subtask("fail", "Fail on purpose")],
        ),
        {
            "purpose": "agent_step",
            "match": r"Your subtask:\s*Count",
            "step": 0,
            "respond": {"tool_calls": [{"name": "calculator", "arguments": {"expression": "6*7"}}]},
        },
        answer_rule("Count", "the answer is {last_tool_result}"),
        {"purpose": "agent_step", "match": r"Your subtask:\s*Fail", "respond": {"error": 400}},
        AGGREGATE,
    ]
}


async def test_the_page_and_its_files_come_from_the_api_only(api_stack: StackFactory) -> None:
    async with api_stack({"rules": []}, api_keys=KEYS) as stack:
        page = await stack.http.get("/ui/")
        redirect = await stack.http.get("/ui")
        files = re.findall(r'(?:src|href)="(static/[^"]+)"', page.text)
        bodies = [await stack.http.get(f"/ui/{path}") for path in files]

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert redirect.status_code == 307 and redirect.headers["location"] == "/ui/"
    assert sorted(files) == ["static/app.css", "static/app.js"]
    for response in bodies:
        assert response.status_code == 200 and len(response.content) > 1000
        # Nothing is loaded from elsewhere: the only absolute URL is SVG's namespace name.
        urls = set(re.findall(r"https?://[^\s\"'`)]+", response.text))
        assert urls <= {"http://www.w3.org/2000/svg"}, urls
    assert "http" not in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]


async def test_config_needs_a_key_and_names_the_models(api_stack: StackFactory) -> None:
    async with api_stack({"rules": []}, api_keys=KEYS) as stack:
        anonymous = await stack.http.get("/ui/config")
        config = await stack.http.get("/ui/config", headers=ANN)

    assert anonymous.status_code == 401 and anonymous.json()["code"] == "unauthorized"
    body = config.json()
    assert body["auth_required"] is True
    assert body["default_model"] in body["models"]
    assert body["temporal_ui_url"] == "http://ui.example:8233"
    assert "key-ann" not in config.text


async def test_yaml_is_read_for_the_editor_and_errors_name_the_line(
    api_stack: StackFactory,
) -> None:
    async with api_stack({"rules": []}) as stack:
        good = await stack.http.post("/ui/yaml", json={"text": "subtasks:\n  - id: a\n"})
        bad = await stack.http.post("/ui/yaml", json={"text": "subtasks:\n  - id: [a\n"})
        missing = await stack.http.post("/ui/yaml", json={})
        bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"
        aliases = await stack.http.post("/ui/yaml", json={"text": bomb})
        nan = await stack.http.post("/ui/yaml", json={"text": "budget: .nan\n"})
        nul = await stack.http.post("/ui/yaml", json={"text": "a: \u0000"})
        dated = await stack.http.post("/ui/yaml", json={"text": "due: 2025-01-31\n"})

    assert good.json() == {"value": {"subtasks": [{"id": "a"}]}}
    assert bad.status_code == 422
    assert bad.json()["message"].startswith("Invalid request: body.text: line 3")
    assert missing.status_code == 422 and "body.text" in missing.json()["message"]
    assert aliases.status_code == 422 and "aliases" in aliases.json()["message"]
    assert nan.status_code == 422 and "finite" in nan.json()["message"]
    assert nul.status_code == 422 and "body.text" in nul.json()["message"]
    assert dated.json() == {"value": {"due": "2025-01-31"}}


async def test_logs_list_events_across_tasks_filtered_and_paginated(
    api_stack: StackFactory,
) -> None:
    async with api_stack(COUNTING, api_keys=KEYS) as stack:
        first = (
            await stack.http.post("/tasks", json={"description": "count to six"}, headers=ANN)
        ).json()["task_id"]
        other = (
            await stack.http.post("/tasks", json={"description": "count for bob"}, headers=BOB)
        ).json()["task_id"]
        for task_id in (first, other):
            await stack.wait_closed(task_id)
        mine = (await stack.http.get("/logs", headers=ANN)).json()
        errors = (await stack.http.get("/logs?level=error", headers=ANN)).json()
        statuses = (
            await stack.http.get(f"/logs?task_id={first}&kind=task_status", headers=ANN)
        ).json()
        page = (await stack.http.get("/logs?limit=2", headers=ANN)).json()
        rest = (
            await stack.http.get(f"/logs?limit=100&cursor={page['next_cursor']}", headers=ANN)
        ).json()
        bobs = (await stack.http.get(f"/logs?task_id={other}", headers=ANN)).json()
        bad_kind = await stack.http.get("/logs?kind=chatter", headers=ANN)
        bad_cursor = await stack.http.get("/logs?cursor=nope", headers=ANN)
        unknown = await stack.http.get("/logs?colour=red", headers=ANN)

    assert {e["task_id"] for e in mine["events"]} == {first}
    times = [e["at"] for e in mine["events"]]
    assert times == sorted(times, reverse=True)
    assert errors["events"] and all(e["level"] == "error" for e in errors["events"])
    assert {(e["subtask_id"], e["status"]) for e in errors["events"]} >= {("fail", "failed")}
    assert [e["status"] for e in statuses["events"]][0] in {"completed", "failed"}
    assert all(e["kind"] == "task_status" for e in statuses["events"])
    assert len(page["events"]) == 2
    assert page["events"] + rest["events"] == mine["events"]
    assert bobs["events"] == []  # another user's task is not shown
    assert bad_kind.status_code == 422 and "query.kind" in bad_kind.json()["message"]
    assert bad_cursor.status_code == 422 and "query.cursor" in bad_cursor.json()["message"]
    assert unknown.status_code == 422 and "query.colour" in unknown.json()["message"]


async def test_a_transcript_shows_the_tool_call_its_result_and_the_answer(
    api_stack: StackFactory,
) -> None:
    async with api_stack(COUNTING, api_keys=KEYS) as stack:
        task_id = (
            await stack.http.post("/tasks", json={"description": "count to six"}, headers=ANN)
        ).json()["task_id"]
        await stack.wait_closed(task_id)
        url = f"/tasks/{task_id}/subtasks/count/transcript"
        transcript = (await stack.http.get(url, headers=ANN)).json()
        failed = (await stack.http.get(url.replace("count", "fail"), headers=ANN)).json()
        as_bob = await stack.http.get(url, headers=BOB)
        no_such = await stack.http.get(url.replace("count", "nothing"), headers=ANN)

    entries = transcript["entries"]
    assert transcript["available"] is True
    assert [e["role"] for e in entries] == ["system", "user", "assistant", "tool", "assistant"]
    [call] = entries[2]["tool_calls"]
    assert call["name"] == "calculator" and '"6*7"' in call["arguments"]
    assert entries[3]["name"] == "calculator" and entries[3]["content"] == "42"
    assert entries[4]["content"] == "the answer is 42"
    assert any(e["role"] == "error" and e["is_error"] for e in failed["entries"])
    assert as_bob.status_code == 404 and as_bob.json()["code"] == "task_not_found"
    assert no_such.status_code == 404 and no_such.json()["code"] == "subtask_not_found"


async def test_tasks_filter_by_text_in_the_description(api_stack: StackFactory) -> None:
    async with api_stack({"rules": [AGGREGATE]}) as stack:
        pear = (await stack.http.post("/tasks", json={"description": "Weigh the pears"})).json()
        plum = (await stack.http.post("/tasks", json={"description": "Weigh 100% plums"})).json()
        for accepted in (pear, plum):
            await stack.wait_closed(accepted["task_id"])
        pears = (await stack.http.get("/tasks?q=PEAR")).json()["tasks"]
        percent = (await stack.http.get("/tasks?q=100%25")).json()["tasks"]
        wildcard = (await stack.http.get("/tasks?q=_")).json()["tasks"]

    assert [t["id"] for t in pears] == [pear["task_id"]]
    assert [t["id"] for t in percent] == [plum["task_id"]]
    assert wildcard == []  # LIKE wildcards are taken literally


def test_the_page_files_are_in_the_built_package(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    subprocess.run(
        [
            sys.executable, "-c", "from setuptools import setup; setup()", "-q",
            "egg_info", "--egg-base", str(tmp_path), "build_py", "--build-lib", str(lib),
        ],
        cwd=Path(__file__).resolve().parents[2], check=True, capture_output=True,
    )  # fmt: skip
    built = sorted(p.name for p in (lib / "mahsm" / "api" / "ui").iterdir())

    assert built == ["app.css", "app.js", "index.html"]
