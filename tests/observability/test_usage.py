"""`GET /usage` sums the task states' usage; a user sees only their own, an admin all."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from tests.cli.api_harness import served_api
from tests.observability.api_tasks import SCENARIO, run_task

pytestmark = pytest.mark.timeout(120)

ALICE, BOB, ADMIN = "usage-key-alice-0001", "usage-key-bob-0002", "usage-key-admin-0003"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def summed(states: list[dict[str, Any]]) -> tuple[int, int, float]:
    return (
        sum(s["usage"]["input_tokens"] for s in states),
        sum(s["usage"]["output_tokens"] for s in states),
        sum(s["usage"]["cost_usd"] for s in states),
    )


def totals(report: dict[str, Any]) -> tuple[int, int, float]:
    total = report["total"]
    return total["input_tokens"], total["output_tokens"], total["cost_usd"]


def same(a: tuple[int, int, float], b: tuple[int, int, float]) -> bool:
    return a[:2] == b[:2] and math.isclose(a[2], b[2], abs_tol=1e-12)


async def test_usage_equals_the_task_states_and_is_scoped_to_the_caller(
    temporal_env: WorkflowEnvironment,
    db_pool: asyncpg.Pool,
    database_url: str,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAHSM_ADMIN_USERS", "root")
    since = datetime.now(UTC).isoformat()
    async with served_api(
        temporal_env=temporal_env,
        pool=db_pool,
        database_url=database_url,
        data_dir=data_dir,
        scenario=SCENARIO,
        api_keys={ALICE: "alice", BOB: "bob", ADMIN: "root"},
    ) as served:
        async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
            alices = [
                await run_task(http, served.engine, "Usage: alice's first calculation", ALICE),
                await run_task(http, served.engine, "Usage: alice's second calculation", ALICE),
            ]
            bobs = [await run_task(http, served.engine, "Usage: bob's only calculation here", BOB)]

            async def usage(key: str, **params: str) -> dict[str, Any]:
                answer = await http.get(
                    "/usage", params={"since": since, **params}, headers=auth(key)
                )
                assert answer.status_code == 200, answer.text
                return dict(answer.json())

            by_task = await usage(ALICE, group_by="task")
            assert {r["key"] for r in by_task["rows"]} == {s["task_id"] for s in alices}
            for row in by_task["rows"]:
                (state,) = [s for s in alices if s["task_id"] == row["key"]]
                assert same(
                    (row["input_tokens"], row["output_tokens"], row["cost_usd"]), summed([state])
                )
            assert same(totals(by_task), summed(alices))
            # LLM calls, counted in each task's state (one per served call) and summed here.
            for row in by_task["rows"]:
                (state,) = [s for s in alices if s["task_id"] == row["key"]]
                assert row["calls"] == state["usage"]["calls"] >= 2  # at least plan + agent
            assert by_task["total"]["calls"] == sum(s["usage"]["calls"] for s in alices)
            by_user = await usage(ALICE, group_by="user")
            assert [r["key"] for r in by_user["rows"]] == ["alice"]  # bob's is not visible
            assert by_user["scope"] == "alice"
            for group in ("model", "day"):
                report = await usage(ALICE, group_by=group)
                assert same(totals(report), summed(alices)), group
                assert report["total"]["tasks"] == 2
            assert (await usage(ALICE, group_by="model"))["rows"][0]["key"] == "scripted/test"

            everyone = await usage(ADMIN, group_by="user")
            assert everyone["scope"] == "all users"
            assert {r["key"] for r in everyone["rows"]} == {"alice", "bob"}
            assert same(totals(everyone), summed(alices + bobs))

            later = await http.get("/usage", params={"since": "2999-01-01"}, headers=auth(ALICE))
            assert later.json()["total"]["tasks"] == 0

            bad = await http.get("/usage", params={"group_by": "month"}, headers=auth(ALICE))
            assert bad.status_code == 422
            assert "group_by" in bad.json()["message"]
            bad = await http.get("/usage", params={"since": "yesterday"}, headers=auth(ALICE))
            assert bad.status_code == 422
            assert "since" in bad.json()["message"]
            assert (await http.get("/usage")).status_code == 401

            # `mahsm usage` shows the same figures.
            cli = await asyncio.to_thread(
                subprocess.run,
                [str(Path(sys.executable).parent / "mahsm"), "usage", "--group-by", "task"]
                + ["--since", since[:19], "--json", "--api", served.url, "--api-key", ALICE],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert cli.returncode == 0, cli.stderr
            assert same(totals(json.loads(cli.stdout)), summed(alices))
