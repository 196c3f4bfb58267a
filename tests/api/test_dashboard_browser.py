"""The dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright).

Every test runs the real engine (Temporal dev server, Postgres, in-process workers on the
scripted model) behind a real uvicorn server, and the page talks to it like any browser.
Screenshots land in `test-output/dashboard/` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.api.conftest import StackFactory, served, subtask
from tests.engine_harness import AGGREGATE, answer_rule, plan_rule

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-output" / "dashboard"
WIDE = {"width": 1280, "height": 900}
NARROW = {"width": 390, "height": 844}
KEYS = {"key-ann": "ann", "key-bob": "bob"}

# Records, per graph node, the statuses it showed, from the moment the page loads.
WATCH_NODES = """
window.__seen = {};
document.addEventListener("DOMContentLoaded", () => {
  const note = () => document.querySelectorAll("svg.graph g.node").forEach((g) => {
    const status = [...g.classList].find((c) => c.startsWith("s-")).slice(2);
    const seen = (window.__seen[g.dataset.id] ||= []);
    if (seen[seen.length - 1] !== status) seen.push(status);
  });
  new MutationObserver(note).observe(document.getElementById("main"),
    {subtree: true, childList: true, attributes: true, attributeFilter: ["class"]});
});
"""


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        reason = "Debian's chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run the browser tests")
        pytest.skip(reason)
    return found


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the module; each test opens its own context."""
    executable = chromium_path()
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, headless=True)
        yield launched
        await launched.close()


async def open_page(browser: Browser, viewport: dict[str, int] = WIDE) -> Page:
    context = await browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    context.set_default_timeout(20_000)
    page = await context.new_page()
    # A script error would otherwise only show as a missing element: print it with the test.
    page.on("pageerror", lambda error: print(f"page error: {error}"))
    await page.add_init_script(WATCH_NODES)
    return page


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def filter_by_form(page: Page) -> None:
    """Clicks the form's Filter and waits for the page it leads to. Waiting on content alone
    races: the page before the filter may already show it, and is then redrawn."""
    button = await page.get_by_role("button", name="Filter").element_handle()
    await button.click()
    await button.wait_for_element_state("hidden")  # detached: the route drew the new page


async def seen(page: Page) -> dict[str, list[str]]:
    result: dict[str, list[str]] = await page.evaluate("window.__seen")
    return result


CHAIN = {
    "rules": [
        plan_rule(
            "chain",
            [
                subtask("calc", "Calculate with the calculator"),
                subtask("check", "Check the number", "calc"),
                subtask("report", "Report the number", "check"),
            ],
        ),
        {
            "purpose": "agent_step",
            "match": r"Your subtask:\s*Calculate",
            "step": 0,
            "latency_ms": 600,
            "respond": {"tool_calls": [{"name": "calculator", "arguments": {"expression": "6*7"}}]},
        },
        answer_rule("Calculate", "it is {last_tool_result}", latency_ms=300),
        answer_rule("Check", "checked", latency_ms=700),
        answer_rule("Report", "reported", latency_ms=700),
        AGGREGATE,
    ]
}


async def test_a_task_submitted_through_the_form_runs_live_in_the_graph(
    api_stack: StackFactory, browser: Browser
) -> None:
    async with api_stack(CHAIN) as stack, served(stack.app) as base:
        page = await open_page(browser)
        await page.goto(f"{base}/ui/#/submit")
        await page.get_by_label("Description").fill("Run the chain of three subtasks")
        await page.get_by_label("Max parallel subtasks").fill("1")
        await shot(page, "submit")
        await page.get_by_role("button", name="Submit task").click()
        await page.wait_for_url("**/ui/#/task/task-*")
        await page.evaluate("window.__sameDocument = true")
        task_id = page.url.split("#/task/")[1]

        await expect(page.locator("#task-result")).to_contain_text("reported", timeout=30_000)
        statuses = await seen(page)
        same_document = await page.evaluate("window.__sameDocument === true")
        progress = await page.locator("#progress-text").inner_text()
        temporal = await page.get_by_role("link", name="Open in the Temporal Web UI").get_attribute(
            "href"
        )
        await shot(page, "task")

        await page.locator('svg.graph g.node[data-id="calc"]').click()
        await page.get_by_role("button", name="Show transcript").click()
        call = page.locator("#transcript .toolcall")
        await expect(call).to_contain_text("Tool call: calculator")
        await expect(call).to_contain_text("6*7")
        await expect(page.locator("#transcript .role-tool")).to_contain_text("42")
        await shot(page, "task-transcript")
        await page.set_viewport_size(NARROW)
        await shot(page, "task-narrow")
        await expect(call).to_contain_text("Tool call: calculator")  # kept across re-reads
        body = await stack.wait_status(task_id, {"completed"})

    assert same_document  # the page was never reloaded
    assert set(statuses) == {"calc", "check", "report"}
    for sid in ("check", "report"):  # waiting on a dependency, then worked
        assert statuses[sid][0] == "pending" and statuses[sid][-1] == "completed", statuses
        assert "running" in statuses[sid], statuses
    assert statuses["calc"][-1] == "completed"
    assert progress == "3 / 3 subtasks done"
    assert temporal == f"http://ui.example:8233/namespaces/default/workflows/{task_id}"
    assert body["task"]["status"] == "completed"


SLOW = {
    "rules": [
        plan_rule("slow", [subtask("wait", "Wait a long time")]),
        answer_rule("Wait", "waited", latency_ms=60_000),
        AGGREGATE,
    ]
}


async def test_approve_cancel_and_reject_from_the_task_page(
    api_stack: StackFactory, browser: Browser
) -> None:
    async with api_stack(SLOW) as stack, served(stack.app) as base:
        held = await stack.http.post(
            "/tasks",
            json={
                "description": "slow task held for approval",
                "options": {"require_approval": True},
            },
        )
        task_id = held.json()["task_id"]
        await stack.wait_status(task_id, {"awaiting_approval"})
        page = await open_page(browser)
        await page.goto(f"{base}/ui/#/task/{task_id}")
        await expect(page.locator("svg.graph g.node")).to_have_count(1)
        await shot(page, "task-awaiting-approval")
        await page.get_by_label("Comment").fill("go ahead")
        await page.get_by_role("button", name="Approve").click()
        await expect(page.get_by_role("button", name="Approve")).to_have_count(0)
        running = await stack.wait_status(task_id, {"running"})
        await expect(page.locator('svg.graph g.node[data-id="wait"]')).to_have_class(
            "node s-running", timeout=20_000
        )

        # The Agents page shows the pool serving the running subtask.
        await page.goto(f"{base}/ui/#/agents")
        await expect(page.get_by_role("link", name=f"wait of {task_id}")).to_be_visible()
        await shot(page, "agents-busy")
        await page.goto(f"{base}/ui/#/task/{task_id}")
        await page.get_by_role("button", name="Cancel task").click()
        await expect(page.locator(".card .badge").first).to_have_text("cancelled", timeout=30_000)
        await expect(page.get_by_role("button", name="Cancel task")).to_have_count(0)
        cancelled = await stack.wait_status(task_id, {"cancelled"})

        second = await stack.http.post(
            "/tasks",
            json={"description": "slow task to reject", "options": {"require_approval": True}},
        )
        rejected_id = second.json()["task_id"]
        await stack.wait_status(rejected_id, {"awaiting_approval"})
        await page.goto(f"{base}/ui/#/task/{rejected_id}")  # same document: only the hash
        await expect(page.get_by_role("heading", name="slow task to reject")).to_be_visible()
        await page.get_by_label("Comment").fill("not now")
        await page.get_by_role("button", name="Reject").click()
        await expect(page.locator("#main .error").first).to_contain_text("rejected: not now")
        rejected = await stack.wait_status(rejected_id, {"cancelled"})

    assert running["task"]["status"] == "running"
    assert cancelled["task"]["status"] == "cancelled"
    assert rejected["task"]["error"] == "rejected: not now"


async def test_with_keys_the_page_asks_for_one_and_shows_only_the_users_tasks(
    api_stack: StackFactory, browser: Browser
) -> None:
    async with api_stack({"rules": [AGGREGATE]}, api_keys=KEYS) as stack, served(stack.app) as base:
        ann = await stack.http.post(
            "/tasks",
            json={"description": "ann's own task"},
            headers={"Authorization": "Bearer key-ann"},
        )
        bob = await stack.http.post(
            "/tasks",
            json={"description": "bob's secret task"},
            headers={"Authorization": "Bearer key-bob"},
        )
        ann_id, bob_id = ann.json()["task_id"], bob.json()["task_id"]
        await stack.wait_closed(ann_id)
        await stack.wait_closed(bob_id)
        await stack.wait_row(ann_id, "completed")
        await stack.wait_row(bob_id, "completed")

        page = await open_page(browser)
        await page.goto(f"{base}/ui/#/tasks")
        await expect(page.get_by_role("heading", name="API key needed")).to_be_visible()
        await shot(page, "api-key")
        await page.get_by_label("API key", exact=True).fill("wrong-key")
        await page.get_by_role("button", name="Use this key").click()
        await expect(page.locator("form .error")).to_contain_text("not valid")
        await page.get_by_label("API key", exact=True).fill("key-ann")
        await page.get_by_role("button", name="Use this key").click()
        await expect(page.locator(f'tr[data-task="{ann_id}"]')).to_be_visible()
        listed = await page.locator("tbody tr").count()
        text = await page.locator("main").inner_text()
        await page.goto(f"{base}/ui/#/task/{bob_id}")
        await expect(page.locator(".error")).to_contain_text(f"No task '{bob_id}' is visible")
        stored = await page.evaluate("sessionStorage.getItem('mahsm.apiKey')")

    assert listed == 1 and "bob's secret task" not in text
    assert stored == "key-ann"  # kept for the browser session, asked once


async def test_tasks_filter_and_every_page_renders_at_both_widths_labelled_and_by_keyboard(
    api_stack: StackFactory, browser: Browser
) -> None:
    problems: dict[str, Any] = {}
    async with api_stack({"rules": [AGGREGATE]}) as stack, served(stack.app) as base:
        done = await stack.http.post("/tasks", json={"description": "a finished task"})
        await stack.wait_closed(done.json()["task_id"])
        await stack.wait_row(done.json()["task_id"], "completed")
        page = await open_page(browser)
        await page.goto(f"{base}/ui/#/tasks")
        await page.get_by_label("Text").fill("FINISHED")
        await page.get_by_label("Status").select_option("completed")
        await filter_by_form(page)
        await expect(page.locator(f'tr[data-task="{done.json()["task_id"]}"]')).to_be_visible()
        await page.get_by_label("Text").fill("no such words")
        await filter_by_form(page)
        await expect(page.get_by_text("No tasks match.")).to_be_visible()
        # The log filtered by task and kind, through the form.
        await page.goto(f"{base}/ui/#/logs")
        await page.get_by_label("Task", exact=True).fill(done.json()["task_id"])
        await page.get_by_label("Kind").select_option("task_status")
        await filter_by_form(page)
        await expect(page.locator("main tbody tr").first).to_contain_text("completed")
        kinds = await page.locator("main tbody tr td:nth-child(5)").all_inner_texts()
        tasks = await page.locator("main tbody tr td:nth-child(3)").all_inner_texts()
        refused: list[str] = []  # anything the Content-Security-Policy blocked
        for name, viewport in (("wide", WIDE), ("narrow", NARROW)):
            page = await open_page(browser, viewport)
            page.on(
                "console",
                lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
            )
            for route, ready in (
                ("submit", "Submit a task"),
                ("tasks", "Tasks"),
                ("agents", "Agents"),
                ("logs", "Logs"),
                ("pipelines", "Pipelines"),
                ("artifacts", "Artifacts"),
                ("experiments", "Experiments"),
            ):
                await page.goto(f"{base}/ui/#/{route}")
                await expect(page.get_by_role("heading", name=ready, exact=True)).to_be_visible()
                await expect(page.locator("main")).not_to_contain_text("Loading")
                await shot(page, f"{route}-{name}")
                problems[f"{route}-{name}"] = await page.evaluate(
                    """() => ({
                      overflow: document.documentElement.scrollWidth > innerWidth,
                      unlabelled: [...document.querySelectorAll("input, select, textarea")]
                        .filter((c) => !c.labels?.length && !c.getAttribute("aria-label"))
                        .map((c) => c.id || c.outerHTML),
                      rawJson: document.querySelector("main").innerText.includes('{"code"'),
                    })"""
                )
            # Keyboard: Tab from the top reaches every page link of the navigation.
            await page.goto(f"{base}/ui/#/tasks")
            reached = set()
            for _ in range(12):
                await page.keyboard.press("Tab")
                reached.add(await page.evaluate("document.activeElement.textContent.trim()"))
            problems[f"keyboard-{name}"] = {
                "Submit",
                "Tasks",
                "Agents",
                "Logs",
                "Pipelines",
                "Artifacts",
                "Experiments",
            } - reached

    assert refused == []
    assert set(kinds) == {"task_status"} and set(tasks) == {done.json()["task_id"]}
    assert len(kinds) >= 4  # pending, planning, running, completed
    for where, found in problems.items():
        if where.startswith("keyboard"):
            assert found == set(), (where, found)
        else:
            assert found == {"overflow": False, "unlabelled": [], "rawJson": False}, (where, found)


async def test_api_errors_show_as_readable_messages_next_to_the_field(
    api_stack: StackFactory, browser: Browser
) -> None:
    async with api_stack({"rules": [AGGREGATE]}) as stack, served(stack.app) as base:
        page = await open_page(browser)
        await page.goto(f"{base}/ui/#/submit")
        await page.get_by_label("Description").fill("short")
        await page.get_by_role("button", name="Submit task").click()
        description_error = page.locator("#description-error")
        await expect(description_error).to_contain_text("description")
        await page.get_by_label("Description").fill("A plan with a dangling dependency")
        await page.get_by_label("Plan or pipeline", exact=True).select_option("plan")
        await page.get_by_label("Plan or pipeline definition (YAML or JSON)").fill(
            "subtasks:\n  - id: a\n    description: do a\n    depends_on: [zz]\n"
            "    required_capabilities: [data_analysis]\n"
        )
        await page.get_by_role("button", name="Submit task").click()
        await expect(page.locator("#definition-error")).not_to_be_empty()
        plan_error = await page.locator("#definition-error").inner_text()
        await page.get_by_label("Plan or pipeline definition (YAML or JSON)").fill("subtasks: [a\n")
        await page.get_by_role("button", name="Submit task").click()
        await expect(page.locator("#definition-error")).to_contain_text("line")
        await shot(page, "submit-errors")
        summary = await page.locator("main").inner_text()

    assert "zz" in plan_error
    assert '{"code"' not in summary and '"details"' not in summary


def fifty_subtasks() -> dict[str, Any]:
    nodes = [subtask(f"s{i:02d}", f"Part {i:02d} of the work") for i in range(10)]
    nodes += [
        subtask(f"s{i:02d}", f"Part {i:02d} of the work", f"s{i - 10:02d}") for i in range(10, 50)
    ]
    return {
        "rules": [
            plan_rule("fifty", nodes),
            {"purpose": "agent_step", "latency_ms": 200, "respond": {"content": "part done"}},
            AGGREGATE,
        ]
    }


async def test_a_fifty_subtask_task_page_renders_fast_and_stays_responsive(
    api_stack: StackFactory, browser: Browser
) -> None:
    """Measured and printed, not asserted as timings (a timing is a benchmark)."""
    async with api_stack(fifty_subtasks()) as stack, served(stack.app) as base:
        options = {"max_parallel": 5, "require_approval": True}
        accepted = await stack.http.post(
            "/tasks", json={"description": "fifty parts", "options": options}
        )
        task_id = accepted.json()["task_id"]
        await stack.wait_status(task_id, {"awaiting_approval"})  # the plan is there, all pending
        page = await open_page(browser)
        started = time.perf_counter()
        await page.goto(f"{base}/ui/#/task/{task_id}")
        await expect(page.locator("svg.graph g.node")).to_have_count(50)
        render_s = time.perf_counter() - started
        first_render_ms: float = await page.evaluate("window.mahsmTaskRender.firstRenderMs")
        # Responsiveness while subtasks change: how late a 50 ms timer fires (the main thread
        # was busy meanwhile), and the browser's own long-task entries (over 50 ms).
        await page.evaluate(
            """window.__lags = []; window.__long = [];
               let last = performance.now();
               window.__timer = setInterval(() => { const now = performance.now();
                 window.__lags.push(now - last - 50); last = now; }, 50);
               new PerformanceObserver((list) => list.getEntries().forEach(
                 (e) => window.__long.push(e.duration))).observe({entryTypes: ["longtask"]});"""
        )
        approved = await stack.http.post(f"/tasks/{task_id}/approve", json={"approved": True})
        assert approved.status_code == 200, approved.text
        click_started = time.perf_counter()
        await page.locator('svg.graph g.node[data-id="s25"]').click()
        await expect(page.locator("#subtask-panel h3")).to_have_text("s25")
        click_s = time.perf_counter() - click_started
        await expect(page.locator("#progress-text")).to_have_text(
            "50 / 50 subtasks done", timeout=120_000
        )
        lags: list[float] = await page.evaluate("clearInterval(window.__timer), window.__lags")
        long_tasks: list[float] = await page.evaluate("window.__long")
        drawn_at: float = await page.evaluate("window.mahsmTaskRender.at")
        statuses = await seen(page)
        await shot(page, "task-fifty")

    print(
        f"\n50-subtask task page: graph on screen {drawn_at:.0f} ms after navigation start"
        f" ({render_s * 1000:.0f} ms as Playwright saw it; drawing took {first_render_ms:.0f} ms);"
        f" while the 50 subtasks changed state: a node click answered in {click_s * 1000:.0f} ms,"
        f" a 50 ms timer fired at most {max(lags):.0f} ms late over {len(lags)} ticks,"
        f" {len(long_tasks)} long tasks (longest {max(long_tasks, default=0):.0f} ms)"
    )
    assert len(statuses) == 50 and all(s[-1] == "completed" for s in statuses.values())
    # Every node was drawn pending and turned completed in the open page.
    assert all(s[0] == "pending" for s in statuses.values()), statuses


PIPELINE_YAML = """name: sums
inputs: {a: str}
steps:
  - name: add
    kind: tool
    tool: calculator
    args: {expression: "40+2"}
outputs: {total: "{add}"}
"""


async def test_a_pipeline_written_in_the_editor_runs_and_its_errors_name_the_step(
    api_stack: StackFactory, browser: Browser
) -> None:
    async with api_stack({"rules": [AGGREGATE]}) as stack, served(stack.app) as base:
        page = await open_page(browser)
        await page.goto(f"{base}/ui/#/submit")
        await page.get_by_label("Plan or pipeline", exact=True).select_option("pipeline")
        editor = page.get_by_label("Plan or pipeline definition (YAML or JSON)")
        await editor.fill(PIPELINE_YAML.replace("    tool: calculator\n", "    tool: abacus\n"))
        await page.get_by_label("Pipeline inputs (YAML or JSON object)").fill("a: x")
        await page.get_by_role("button", name="Submit task").click()
        await expect(page.locator("#definition-error")).not_to_be_empty()
        step_error = await page.locator("#definition-error").inner_text()
        await editor.fill(PIPELINE_YAML)
        await page.get_by_role("button", name="Submit task").click()
        await page.wait_for_url("**/ui/#/task/task-*")
        await expect(page.locator("#task-result")).to_contain_text('"total": "42"')
        await expect(page.locator('svg.graph g.node[data-id="add"]')).to_have_class(
            "node s-completed"
        )

    assert "add" in step_error and "abacus" in step_error


# The shipped experiment example (examples/experiments) on its scripted scenario: a terse
# config that answers exactly and a chatty one that costs more and scores lower. The model is
# slowed down so the page opens while the experiment still runs.
EXAMPLES = ROOT / "examples" / "experiments"
EXPERIMENT_SCENARIO = {
    **yaml.safe_load((ROOT / "mahsm/scenarios/experiments.yaml").read_text()),
    "latency_ms": 600,
}
WATCH_EXPERIMENT = """
window.__experimentStatuses = [];
document.addEventListener("DOMContentLoaded", () => {
  new MutationObserver(() => {
    const text = document.getElementById("experiment-status")?.textContent;
    const seen = window.__experimentStatuses;
    if (text && seen[seen.length - 1] !== text) seen.push(text);
  }).observe(document.getElementById("main"), {subtree: true, childList: true});
});
"""


def experiment_body() -> dict[str, Any]:
    rows = [json.loads(line) for line in (EXAMPLES / "dataset.jsonl").read_text().splitlines()]
    return {
        "name": "ui styles",
        "strategy": "multi_branch",
        "target": {"pipeline": yaml.safe_load((EXAMPLES / "qa.pipeline.yaml").read_text())},
        "configs": [
            yaml.safe_load((EXAMPLES / "configs" / f"{name}.yaml").read_text())
            for name in ("terse", "chatty")
        ],
        "dataset": rows,
        "metrics": [{"kind": "exact_match"}],
        "max_concurrency": 2,
        "mlflow": False,
    }


async def test_the_experiments_page_shows_configs_live_with_scores_costs_and_a_chart(
    api_stack: StackFactory, browser: Browser
) -> None:
    async with api_stack(EXPERIMENT_SCENARIO) as stack, served(stack.app) as base:
        started = await stack.http.post("/experiments", json=experiment_body())
        assert started.status_code == 202, started.text
        experiment_id = started.json()["id"]
        for _ in range(50):  # Temporal's visibility store lists a new workflow a moment later
            listing = (await stack.http.get("/experiments")).json()["experiments"]
            if any(e["id"] == experiment_id for e in listing):
                break
            await asyncio.sleep(0.1)
        page = await open_page(browser)
        await page.add_init_script(WATCH_EXPERIMENT)
        await page.goto(f"{base}/ui/#/experiments")
        link = page.get_by_role("link", name="ui styles")
        await expect(link).to_be_visible()
        await shot(page, "experiments-list")
        listed = await page.locator(f'tr[data-experiment="{experiment_id}"]').inner_text()
        configs_cell = await page.locator(
            f'tr[data-experiment="{experiment_id}"] td.num'
        ).inner_text()
        await link.click()
        await page.wait_for_url(f"**/ui/#/experiment/{experiment_id}")
        await page.evaluate("window.__sameDocument = true")
        await expect(page.locator("#experiment-status")).to_have_text("completed", timeout=60_000)
        statuses = await page.evaluate("window.__experimentStatuses")
        same_document = await page.evaluate("window.__sameDocument === true")
        state = (await stack.http.get(f"/experiments/{experiment_id}")).json()
        rows = {
            s["config_id"]: await page.locator(
                f'#config-table tr[data-config="{s["config_id"]}"]'
            ).inner_text()
            for s in state["summary"]
        }
        points = await page.locator("svg.chart g.point").evaluate_all(
            "gs => gs.map((g) => g.dataset.config)"
        )
        chart_title = await page.locator("svg.chart > title").text_content()
        chart_desc = await page.locator("svg.chart > desc").text_content()
        winner_row = await page.locator("#config-table tr.winner").get_attribute("data-config")
        await shot(page, "experiment")
        await page.set_viewport_size(NARROW)
        narrow_overflow = await page.evaluate("document.documentElement.scrollWidth > innerWidth")
        await shot(page, "experiment-narrow")
        # A missing experiment reads as the API's message, not as JSON.
        await page.goto(f"{base}/ui/#/experiment/experiment-nope")
        await expect(page.locator("main .error")).to_contain_text("no experiment")

    assert "multi_branch" in listed and configs_cell == "2"
    assert same_document and statuses[0] == "running" and statuses[-1] == "completed", statuses
    assert len(state["summary"]) == 2 and state["winner"] is not None
    for summary in state["summary"]:
        row = rows[summary["config_id"]]
        assert summary["label"] in row
        assert f"{summary['mean_score']:.3f}" in row, (row, summary)
        assert f"${summary['cost_per_row']:.6f}" in row, (row, summary)
        assert summary["cost_per_row"] > 0
    assert sorted(points) == sorted(state["config_ids"])
    assert chart_title and "score" in chart_title.lower()
    assert chart_desc and all(s["label"] in chart_desc for s in state["summary"])
    assert winner_row == state["winner"]
    assert not narrow_overflow
    assert (SHOTS / "experiment.png").exists() and (SHOTS / "experiment-narrow.png").exists()


STORY = (
    "Once upon a time a fox wrote a very long story, word by word, in front of everyone, "
    "and when it was done they all lived happily ever after."
)


async def test_the_task_page_shows_the_live_text_of_the_selected_running_subtask(
    api_stack: StackFactory, browser: Browser
) -> None:
    rules = {"rules": [answer_rule("Write the story", STORY, latency_ms=6000)]}
    async with api_stack(rules) as stack, served(stack.app) as base:
        plan = {"subtasks": [subtask("write", "Write the story")]}
        # Held for approval until the page follows the task: a stream shows the text
        # published after it connects, and the call's first words come 1 s into it.
        options = {"require_approval": True}
        body = {"description": "Tell a story", "plan": plan, "options": options}
        created = await stack.http.post("/tasks", json=body)
        assert created.status_code == 202, created.text
        task_id = created.json()["task_id"]
        await stack.wait_status(task_id, {"awaiting_approval"})
        page = await open_page(browser)
        await page.goto(f"{base}/ui/#/task/{task_id}")
        await page.locator('svg.graph g.node[data-id="write"]').click()
        approved = await stack.http.post(f"/tasks/{task_id}/approve", json={"approved": True})
        assert approved.status_code == 200, approved.text
        live = page.locator("#live-text")
        await expect(live).to_contain_text("Once upon a time")  # streamed while it runs
        partial = await live.inner_text()
        await shot(page, "task-live-text")
        await expect(page.locator("#task-result")).to_contain_text("happily", timeout=30_000)
        await expect(live).to_be_hidden()  # the call ended: its output is shown instead

    assert "happily ever after" not in partial


async def test_the_task_page_links_its_trace_and_child_workflows_and_logs_filter_by_time(
    api_stack: StackFactory, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGFUSE_HOST", "http://langfuse.example/")
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    # inline_history_events=0: every agent continues in a child workflow of its own.
    async with (
        api_stack(CHAIN, inline_history_events=0) as stack,
        served(stack.app) as base,
    ):
        started = await stack.http.post("/tasks", json={"description": "chain with children"})
        task_id = started.json()["task_id"]
        await stack.wait_closed(task_id)
        await stack.wait_row(task_id, "completed")
        # The projection records the trace id when tracing is on (tests/observability); here
        # tracing is off, so the row gets one the way the projection would write it.
        await stack.engine.pool.execute(
            "UPDATE tasks SET trace_id = $2 WHERE id = $1", task_id, trace_id
        )
        links = (await stack.http.get(f"/tasks/{task_id}")).json()["links"]

        page = await open_page(browser)
        await page.goto(f"{base}/ui/#/task/{task_id}")
        trace = page.get_by_role("link", name="Open the trace in Langfuse")
        await expect(trace).to_have_attribute("href", f"http://langfuse.example/trace/{trace_id}")
        await page.locator('svg.graph g.node[data-id="check"]').click()
        child = page.get_by_role("link", name="Open its child workflow in the Temporal Web UI")
        child_href = await child.get_attribute("href")
        await shot(page, "task-links")

        # The log by time: a window in the future holds nothing, one around now everything.
        await page.goto(f"{base}/ui/#/logs")
        await page.get_by_label("Task", exact=True).fill(task_id)
        await page.get_by_label("From").fill("2999-01-01T00:00")
        await filter_by_form(page)
        await expect(page.get_by_text("No events match.")).to_be_visible()
        assert "since=2999-01-01T00%3A00" in page.url or "since=2999-01-01T00:00" in page.url
        await page.get_by_label("From").fill("2000-01-01T00:00")
        await page.get_by_label("Until").fill("2999-01-01T00:00")
        await filter_by_form(page)
        await expect(page.locator("main tbody tr").first).to_contain_text(task_id)
        await shot(page, "logs-time-filter")

    assert links["trace_id"] == trace_id
    assert set(links["subtask_workflows"]) == {"calc", "check", "report"}
    assert child_href == (f"http://ui.example:8233/namespaces/default/workflows/{task_id}.check")
