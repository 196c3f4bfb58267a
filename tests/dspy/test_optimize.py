"""Optimization runs: BootstrapFewShot on the scripted model, saved as an artifact with scores."""

from __future__ import annotations

import uuid
from typing import Any

from mahsm import prompt
from mahsm.optimize.models import OptimizeRequest
from mahsm.queues import tasks_queue
from mahsm.workflows.optimize_workflow import OptimizeWorkflow
from tests.dspy.helpers import chat


def optimize_scenario(**extra: Any) -> dict[str, Any]:
    """Right ('blue') only when the prompt holds training examples (demos), else 'red'."""
    return {
        **extra,
        "rules": [
            {"purpose": "step", "match": "train-", "respond": {"content": chat(answer="blue")}},
            {"purpose": "step", "respond": {"content": chat(answer="red")}},
        ],
    }


def optimize_request(name: str, train: int = 4, dev: int = 4) -> OptimizeRequest:
    return OptimizeRequest(
        program="tests.dspy.programs.Answerer",
        trainset=[{"question": f"train-{i}: colour?", "answer": "blue"} for i in range(train)],
        devset=[{"question": f"dev-{i}: colour?", "answer": "blue"} for i in range(dev)],
        metric="exact_match",
        save=name,
        model="scripted/optimize",
        max_bootstrapped_demos=2,
        max_labeled_demos=2,
    )


async def test_bootstrap_fewshot_saves_demos_and_scores(engine_factory) -> None:
    async with engine_factory(optimize_scenario()) as engine:
        handle = await engine.client.start_workflow(
            OptimizeWorkflow.run,
            optimize_request("colours"),
            id=f"optimize-{uuid.uuid4()}",
            task_queue=tasks_queue(engine.settings.queue_prefix),
        )
        state = await handle.result()
        query = await handle.query(OptimizeWorkflow.state)
        artifact = await prompt.ArtifactStore(engine.pool).get("colours")
        program = await prompt.load("colours", pool=engine.pool)

    assert state.status == "completed", state.error
    result = state.result
    assert result is not None
    assert (result.baseline_score, result.score) == (0.0, 1.0)
    assert result.demos >= 1 and result.lm_calls_replayed == 0
    assert query.progress.best_score == 1.0 and query.progress.done == query.progress.planned
    assert artifact["scores"] == {"dev": 1.0, "baseline": 0.0, "metric": "exact_match"}
    assert program.answer.demos and "train-" in program.answer.demos[0]["question"]


async def test_cli_optimize_waits_and_reports_the_saved_artifact(
    engine_factory, temporal_env, database_url, tmp_path
) -> None:
    import asyncio
    import json

    from typer.testing import CliRunner

    from mahsm.api.main import create_app
    from mahsm.cli.main import app as cli
    from tests.api.conftest import api_settings, served

    request = optimize_request("cli-colours")
    train, dev = tmp_path / "train.jsonl", tmp_path / "dev.jsonl"
    train.write_text("\n".join(json.dumps(row) for row in request.trainset))
    dev.write_text("\n".join(json.dumps(row) for row in request.devset))
    args = ["optimize", "--program", "tests.dspy.programs:Answerer", "--trainset", str(train)]
    args += ["--devset", str(dev), "--save", "cli-colours", "--wait"]

    async with engine_factory(optimize_scenario()) as engine:
        settings = api_settings(
            temporal_env, database_url, queue_prefix=engine.settings.queue_prefix
        )
        async with served(create_app(settings)) as url:
            result = await asyncio.to_thread(CliRunner().invoke, cli, [*args, "--api", url])
            missing = await asyncio.to_thread(
                CliRunner().invoke, cli, ["artifacts", "show", "nope", "--api", url]
            )
        stored = await prompt.ArtifactStore(engine.pool).get("cli-colours")

    assert result.exit_code == 0, result.output
    assert "saved cli-colours@1: score 1.0 (baseline 0.0)" in result.output
    assert "evaluations, best score" in result.output
    assert stored["scores"]["dev"] == 1.0
    assert missing.exit_code == 3
