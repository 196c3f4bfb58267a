"""ExperimentWorkflow on the real engine: every strategy, failures, datasets, MLflow."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from mahsm.devstack.process import free_port
from mahsm.experiments.mlflow_sync import log_experiment
from mahsm.experiments.models import BranchStatus, ExperimentRequest, ExperimentState, ServeRequest
from mahsm.queues import tasks_queue
from mahsm.workflows.experiment_workflow import ExperimentWorkflow
from tests.engine_harness import Engine

PIPELINE = {
    "name": "qa",
    "inputs": {"q": "str", "mode": "str"},
    "steps": [{"name": "answer", "kind": "llm", "prompt": "Question: {q} mode={mode}"}],
    "outputs": {"answer": "{answer}"},
}


def _rule(match: str, content: str | None = None, **extra: Any) -> dict[str, Any]:
    respond: dict[str, Any] = {"content": content} if content is not None else {"error": 401}
    return {"purpose": "any", "match": match, "respond": respond, **extra}


SCENARIO = {
    "rules": [
        _rule(r"Grade this answer(.|\n)*Answer: 4$", '{"score": 1, "reason": "right"}'),
        _rule("Grade this answer", '{"score": 0.25, "reason": "wrong"}'),
        _rule("mode=long", "word " * 400 + "answer 4"),
        _rule("mode=fail"),
        _rule("mode=slow", "slow answer", latency_ms=2500),
        _rule(r"Question: 2\+2 mode=good", "4"),
        _rule(r"Question: 3\+3 mode=good", "The answer is 6"),
        _rule(r"Question: 2\+2 mode=half", "4"),
        _rule(r"Question: 3\+3 mode=half", "7"),
        _rule("mode=bad", "5"),
        _rule("mode=", "plain answer"),
    ]
}


def _request(configs: list[dict[str, Any]], **extra: Any) -> ExperimentRequest:
    body: dict[str, Any] = {
        "name": "test",
        "target": {"pipeline": PIPELINE},
        "configs": configs,
        "inputs": {"q": "1+1"},
        "mlflow": False,
    }
    body.update(extra)
    return ExperimentRequest.model_validate(body)


async def _start(engine: Engine, request: ExperimentRequest) -> Any:
    return await engine.client.start_workflow(
        ExperimentWorkflow.run,
        request,
        id=f"experiment-{uuid.uuid4()}",
        task_queue=tasks_queue(engine.settings.queue_prefix),
    )


def _mode(mode: str) -> dict[str, Any]:
    return {"inputs": {"mode": mode}}


async def test_multi_branch_reports_a_failing_config_failed_and_the_others_succeed(
    engine_factory,
) -> None:
    async with engine_factory(SCENARIO) as engine:
        handle = await _start(engine, _request([_mode("good"), _mode("fail"), _mode("other")]))
        state: ExperimentState = await handle.result()
    by_mode = {b.config.inputs["mode"]: b for b in state.branches}
    assert state.status == "completed"
    assert by_mode["good"].status == BranchStatus.SUCCESS
    assert by_mode["other"].status == BranchStatus.SUCCESS
    assert by_mode["other"].output is not None and "plain answer" in by_mode["other"].output
    failed = by_mode["fail"]
    assert failed.status == BranchStatus.FAILED
    assert failed.error is not None and failed.error.message
    assert failed.task_ids == [f"task-{handle.id.removeprefix('experiment-')}.{failed.config_id}"]
    assert [s.errors for s in state.summary] == [0, 1, 0]
    for branch in state.branches:
        assert branch.started_at and branch.finished_at and branch.duration_s is not None


async def test_shadow_that_fails_or_sleeps_changes_neither_the_primary_result_nor_latency(
    engine_factory,
) -> None:
    async with engine_factory(SCENARIO) as engine:
        alone = await (await _start(engine, _request([_mode("other")], strategy="shadow"))).result()
        handle = await _start(
            engine,
            _request([_mode("other"), _mode("slow"), _mode("fail")], strategy="shadow"),
        )
        # The primary's branch is in the state while the slow shadow still runs.
        state = await engine.wait_for_experiment(handle, lambda s: s.primary is not None)
        slow = next(b for b in state.branches if b.config.inputs["mode"] == "slow")
        assert slow.status == BranchStatus.RUNNING
        final: ExperimentState = await handle.result()
    primary = final.primary
    assert primary is not None and alone.primary is not None
    assert primary.status == BranchStatus.SUCCESS
    assert primary.output == alone.primary.output
    shadows = {b.config.inputs["mode"]: b for b in final.branches if b.role == "shadow"}
    assert shadows["fail"].status == BranchStatus.FAILED
    assert shadows["slow"].status == BranchStatus.SUCCESS
    # Event timestamps: the primary ended long before the slow shadow, as fast as when alone.
    assert primary.finished_at is not None and shadows["slow"].finished_at is not None
    assert primary.finished_at < shadows["slow"].finished_at
    assert primary.duration_s is not None and alone.primary.duration_s is not None
    assert primary.duration_s < 2.0
    assert shadows["slow"].duration_s is not None and shadows["slow"].duration_s >= 2.5


async def test_round_robin_serves_configs_in_rotation(engine_factory) -> None:
    async with engine_factory(SCENARIO) as engine:
        handle = await _start(
            engine, _request([_mode("a"), _mode("b"), _mode("c")], strategy="round_robin")
        )
        served = []
        for _ in range(4):
            result = await handle.execute_update(ExperimentWorkflow.serve, ServeRequest())
            served.append(result.branch.config.inputs["mode"])
            assert result.branch.status == BranchStatus.SUCCESS
        await handle.signal(ExperimentWorkflow.close)
        state: ExperimentState = await handle.result()
    assert served == ["a", "b", "c", "a"]
    assert state.served == 4
    assert [s.branches for s in state.summary] == [2, 1, 1]


async def test_dataset_scores_and_aggregates_are_correct_and_logged_to_mlflow(
    engine_factory, data_dir: Path
) -> None:
    uri = f"sqlite:///{data_dir / 'mlflow.db'}"
    request = _request(
        [_mode("good"), _mode("half"), _mode("bad")],
        inputs={},
        dataset=[
            {"inputs": {"q": "2+2"}, "expected": "4"},
            {"inputs": {"q": "3+3"}, "expected": "6"},
        ],
        metrics=[{"kind": "numeric"}, {"kind": "contains"}],
        mlflow=True,
    )
    async with engine_factory(SCENARIO, mlflow_tracking_uri=uri) as engine:
        handle = await _start(engine, request)
        state: ExperimentState = await handle.result()
    summary = {s.label: s for s in state.summary}
    good, half, bad = (summary[f"inputs={{'mode': '{m}'}}"] for m in ("good", "half", "bad"))
    assert (good.mean_score, good.pass_rate, good.ci95) == (1.0, 1.0, 0.0)
    assert bad.mean_score == 0.0 and bad.pass_rate == 0.0
    assert half.mean_score == 0.5 and half.pass_rate == 0.5
    assert half.ci95 is not None and abs(half.ci95 - 0.98) < 0.01
    assert half.scores == {"numeric": 0.5, "contains": 0.5}
    assert state.winner == state.config_ids[0]
    assert len(state.branches) == 6
    # MLflow: one experiment, a parent run per config, a nested run per row.
    assert state.mlflow.status == "synced" and state.mlflow.runs == 6
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([state.mlflow.experiment_id], max_results=100)
    assert len(runs) == 9
    children = [r for r in runs if "mahsm.branch" in r.data.tags]
    assert len(children) == 6
    child = next(r for r in children if r.data.params.get("config_id") == state.config_ids[0])
    assert child.data.params["inputs.mode"] == '"good"'
    assert child.data.metrics["score.numeric"] == 1.0
    assert "latency_s" in child.data.metrics
    assert child.data.tags["mlflow.parentRunId"] in {r.info.run_id for r in runs}
    assert child.data.tags["mahsm.task_ids"].startswith("task-")
    assert [a.path for a in client.list_artifacts(child.info.run_id)] == ["outputs.json"]


async def test_mlflow_down_the_experiment_completes_and_sync_fills_it_later(
    engine_factory, data_dir: Path
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    scenario = {"rules": [{"purpose": "any", "respond": {"content": "fine"}}]}
    request = ExperimentRequest.model_validate(
        {
            "name": "offline",
            "target": {
                "pipeline": {"name": "p", "steps": [{"name": "a", "kind": "llm", "prompt": "Hi"}]}
            },
            "configs": [{"temperature": 0.1}, {"temperature": 0.9}],
        }
    )
    async with engine_factory(scenario, mlflow_tracking_uri=down) as engine:
        state: ExperimentState = await engine.client.execute_workflow(
            ExperimentWorkflow.run,
            request,
            id=f"experiment-{uuid.uuid4()}",
            task_queue=tasks_queue(engine.settings.queue_prefix),
        )
    assert state.status == "completed"
    assert [b.status for b in state.branches] == [BranchStatus.SUCCESS, BranchStatus.SUCCESS]
    assert state.mlflow.status == "failed"
    assert state.mlflow.error is not None and "mahsm experiment sync" in state.mlflow.error

    uri = f"sqlite:///{data_dir / 'later.db'}"
    synced = log_experiment(state, uri)
    runs = MlflowClient(tracking_uri=uri).search_runs([str(synced.experiment_id)])
    assert sorted(r.data.params["temperature"] for r in runs) == ["0.1", "0.9"]


async def test_llm_judge_scores_with_its_own_call_and_cost(engine_factory) -> None:
    judge = {
        "kind": "llm_judge",
        "name": "judge",
        "rubric": "1 when the answer is the right number",
        "judge_model": "scripted/test",
    }
    request = _request(
        [_mode("good"), _mode("bad")],
        inputs={},
        dataset=[{"inputs": {"q": "2+2"}, "expected": "4"}],
        metrics=[judge, {"kind": "exact_match"}],
    )
    async with engine_factory({**SCENARIO, "prices": {"input_per_mtok": 1.0}}) as engine:
        state: ExperimentState = await (await _start(engine, request)).result()
    good, bad = state.summary
    assert (good.mean_score, bad.mean_score) == (1.0, 0.25)
    assert (good.scores["exact_match"], bad.scores["exact_match"]) == (1.0, 0.0)
    assert good.judge_cost_usd > 0
    assert all(b.judge_usage.input_tokens > 0 for b in state.branches)


async def test_a_long_output_is_claim_checked_scored_and_logged_whole(
    engine_factory, data_dir: Path
) -> None:
    uri = f"sqlite:///{data_dir / 'mlflow.db'}"
    request = _request(
        [_mode("long")],
        inputs={},
        dataset=[{"inputs": {"q": "2+2"}, "expected": "answer 4"}],
        metrics=[{"kind": "contains"}],
        mlflow=True,
    )
    async with engine_factory(SCENARIO, mlflow_tracking_uri=uri) as engine:
        state: ExperimentState = await (await _start(engine, request)).result()
    (branch,) = state.branches
    assert branch.output is None and branch.output_ref is not None
    assert branch.output_ref.size_bytes > 1024
    assert branch.scores == {"contains": 1.0}
    client = MlflowClient(tracking_uri=uri)
    run = next(
        r
        for r in client.search_runs([str(state.mlflow.experiment_id)])
        if "mahsm.branch" in r.data.tags
    )
    path = client.download_artifacts(run.info.run_id, "outputs.json", str(data_dir))
    assert "word word" in Path(path).read_text() and "answer 4" in Path(path).read_text()


async def test_shadows_run_without_tools_that_change_the_world(
    engine_factory, data_dir: Path
) -> None:
    writes = {
        "name": "notes",
        "inputs": {"q": "str", "mode": "str"},
        "steps": [
            {"name": "answer", "kind": "llm", "prompt": "Question: {q} mode={mode}"},
            {
                "name": "save",
                "kind": "tool",
                "tool": "write_file",
                "args": {"path": "answer-{mode}.txt", "content": "{answer}"},
            },
        ],
        "outputs": {"answer": "{answer}"},
    }
    configs = [_mode("good"), _mode("other")]
    async with engine_factory(SCENARIO) as engine:
        shadowed = await _start(
            engine, _request(configs, strategy="shadow", target={"pipeline": writes})
        )
        allowed = await _start(
            engine,
            _request(
                configs,
                strategy="shadow",
                target={"pipeline": writes},
                shadow_side_effects=True,
            ),
        )
        default, opted_in = await shadowed.result(), await allowed.result()

    assert default.primary is not None and default.primary.status == BranchStatus.SUCCESS
    (shadow,) = [b for b in default.branches if b.role == "shadow"]
    assert shadow.status == BranchStatus.FAILED  # its tool step was refused, not run
    assert shadow.error is not None
    assert "changes the world and is off in this run" in shadow.error.message
    assert not (data_dir / "workspaces" / shadow.task_ids[0] / "answer-other.txt").exists()
    (opted,) = [b for b in opted_in.branches if b.role == "shadow"]
    assert opted.status == BranchStatus.SUCCESS, opted.error
    assert (data_dir / "workspaces" / opted.task_ids[0] / "answer-other.txt").exists()
