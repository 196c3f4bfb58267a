"""`mahsm submit --estimate` and `MahsmClient.estimate`: the estimate, and nothing runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from mahsm.cli import common as cli_common
from mahsm.cli.main import app
from mahsm.client import MahsmClient
from mahsm.contracts.task import Plan
from tests.cli.api_harness import FACTORIAL, SALES, ServedApi


@pytest.fixture(autouse=True)
def wide_console() -> None:
    cli_common.console.width = 200
    cli_common.errors.width = 200


async def mahsm(*args: str) -> Result:
    """Run the CLI in a thread: it runs its own event loop, the engine runs on ours."""
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


async def test_submit_estimate_prints_the_table_and_runs_nothing(
    api: ServedApi, tmp_path: Path
) -> None:
    result = await mahsm(
        "submit", SALES, "--estimate", "--model", "scripted/demo", "--api", api.url
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Estimate on scripted/demo" in out
    for heading in ("LLM calls", "input tokens", "cost USD", "seconds", "total"):
        assert heading in out
    assert "(planning, aggregation)" in out and "Critical path:" in out
    assert "This estimate planned once" in out and "Nothing ran" in out
    assert "Submitted" not in out
    assert await api.engine.pool.fetchval("SELECT count(*) FROM tasks") == 0

    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "subtasks:\n"
        "  - {id: only, description: compute it, required_capabilities: [data_analysis]}\n"
    )
    given = await mahsm("submit", FACTORIAL, "--estimate", "--plan", str(plan), "--api", api.url)
    assert given.exit_code == 0, given.output
    assert "only" in given.output and "planned once" not in given.output
    assert "(planning, aggregation)" not in given.output  # one given subtask: no task call


async def test_the_client_estimates_over_rest_and_over_temporal(api: ServedApi) -> None:
    plan = Plan.model_validate(
        {
            "subtasks": [
                {"id": "x", "description": "do x", "required_capabilities": ["data_analysis"]},
                {"id": "y", "description": "do y", "required_capabilities": ["data_analysis"]},
            ]
        }
    )
    async with MahsmClient.rest(api.url) as client:
        over_rest = await client.estimate(FACTORIAL, plan=plan, max_parallel=1)
    direct = MahsmClient.from_temporal_client(
        api.engine.client, queue_prefix=api.settings.queue_prefix
    )
    async with direct:
        over_temporal = await direct.estimate(FACTORIAL, plan=plan, max_parallel=1)
    for report in (over_rest, over_temporal):
        assert not report.planned and [s.id for s in report.estimate.subtasks] == ["x", "y"]
        # One at a time: the two subtasks run one after the other.
        assert report.estimate.critical_path == ["x", "y"]
    assert over_rest.estimate.total == over_temporal.estimate.total
