"""The dashboard's task view says when and why a plan was revised (real headless Chromium)."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, expect

from tests.api.conftest import TERMINAL, StackFactory, served
from tests.api.test_dashboard_browser import browser, open_page, shot
from tests.workflows.test_replan import DESCRIPTION, REVISION, replan_rule, scenario

__all__ = ["browser"]  # the module's Chromium fixture, shared with the dashboard tests


async def test_the_task_page_shows_plan_revised_and_why(
    api_stack: StackFactory, browser: Browser, tmp_path: Path
) -> None:
    spec = scenario(tmp_path / "calls.jsonl", replan_rule(REVISION))
    async with api_stack(spec) as stack, served(stack.app) as base:
        response = await stack.http.post(
            "/tasks",
            json={"description": DESCRIPTION, "options": {"replan": {"max_replans": 1}}},
        )
        task_id = response.json()["task_id"]
        await stack.wait_status(task_id, TERMINAL)
        page = await open_page(browser)
        await page.goto(f"{base}/ui/#/task/{task_id}")
        line = page.locator("#task-revised")
        await expect(line).to_contain_text("plan revised (1): subtask 'analyze' failed")
        await expect(page.locator('svg.graph g.node[data-id="report_alt"]')).to_have_count(1)
        await shot(page, "task-plan-revised")
