"""Logging an experiment to MLflow, idempotently: a retry or a later sync adds no run twice.

Each MAHSM experiment is one MLflow experiment (`<name> [<experiment id>]`). Each branch is
one run tagged with `mahsm.branch` (its key); a dataset experiment has one parent run per
config with a nested run per row. Runs are found again by their tags, so logging the same
state twice updates the runs it made the first time. Called from an activity (and from
`mahsm experiment sync`), never from workflow code. Blocking: run it in a thread.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mahsm.experiments.models import Branch, ExperimentState, MlflowSync

# Fail fast when the server is unreachable: the activity's retry policy (and `sync`) retry.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")

TAG_EXPERIMENT = "mahsm.experiment_id"
TAG_BRANCH = "mahsm.branch"
TAG_CONFIG_PARENT = "mahsm.config_parent"


def _artifact_location(uri: str, name: str) -> str | None:
    """Artifacts of a SQLite store beside it; a server chooses its own."""
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///")).parent / "mlflow-artifacts" / name
        return path.resolve().as_uri()
    return None


def _params(branch: Branch) -> dict[str, str]:
    fields = branch.config.model_dump(mode="json", exclude_none=True)
    inputs = fields.pop("inputs", {}) or {}
    params = {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in fields.items()
    }
    params.update({f"inputs.{k}": json.dumps(v)[:6000] for k, v in inputs.items()})
    params["config_id"] = branch.config_id
    return params


def _metrics(branch: Branch) -> dict[str, float]:
    metrics = {
        "success": 1.0 if branch.status == "success" else 0.0,
        "input_tokens": float(branch.usage.input_tokens),
        "output_tokens": float(branch.usage.output_tokens),
        "cost_usd": branch.usage.cost_usd,
    }
    if branch.duration_s is not None:
        metrics["latency_s"] = branch.duration_s
    metrics.update({f"score.{name}": value for name, value in branch.scores.items()})
    return metrics


def _outputs(branch: Branch, texts: dict[str, str]) -> str:
    return json.dumps(
        {
            "status": branch.status,
            "output": branch.output if branch.output is not None else texts.get(branch.key),
            "output_ref": branch.output_ref.model_dump() if branch.output_ref else None,
            "value": branch.value,
            "error": branch.error.model_dump() if branch.error else None,
            "task_ids": branch.task_ids,
        },
        ensure_ascii=False,
        indent=1,
        default=str,
    )


def log_experiment(
    state: ExperimentState,
    tracking_uri: str,
    on_run: Callable[[int], None] | None = None,
    texts: dict[str, str] | None = None,
) -> MlflowSync:
    """Create or update the MLflow experiment and runs of `state`; returns what was synced.

    `on_run` is called with the count of runs done after each one (the activity heartbeats);
    `texts` holds claim-checked outputs by branch key, for the `outputs.json` artifacts.
    Raises whatever MLflow raises (unreachable server, ...); the caller decides to retry.
    """
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.exceptions import MlflowException

    for noisy in ("mlflow", "alembic"):  # store set-up chatter; MAHSM logs what matters
        logging.getLogger(noisy).setLevel(logging.WARNING)
    client = MlflowClient(tracking_uri=tracking_uri)
    name = f"{state.name} [{state.experiment_id}]"
    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            experiment_id = client.create_experiment(
                name,
                artifact_location=_artifact_location(tracking_uri, state.experiment_id),
                tags={TAG_EXPERIMENT: state.experiment_id, "mahsm.strategy": state.strategy},
            )
        except MlflowException:  # created meanwhile by another attempt
            again = client.get_experiment_by_name(name)
            if again is None:
                raise
            experiment_id = again.experiment_id
    else:
        experiment_id = found.experiment_id
    existing: dict[str, Any] = {}
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        for run in page:
            key = run.data.tags.get(TAG_BRANCH) or run.data.tags.get(TAG_CONFIG_PARENT)
            if key is not None:
                existing[key] = run
        token = page.token
        if not token:
            break
    base_tags = {TAG_EXPERIMENT: state.experiment_id, "mahsm.strategy": state.strategy}
    parents: dict[str, str] = {}
    if any(b.row is not None and b.role == "branch" for b in state.branches):
        for summary in state.summary:
            key = f"config:{summary.config_id}"
            parent = existing.get(key)
            run_id = (
                parent.info.run_id
                if parent is not None
                else client.create_run(
                    experiment_id,
                    run_name=summary.label[:200],
                    tags={
                        **base_tags,
                        TAG_CONFIG_PARENT: key,
                        "mahsm.config_id": summary.config_id,
                    },
                ).info.run_id
            )
            parents[summary.config_id] = run_id
            metrics = {
                "mean_score": summary.mean_score,
                "ci95": summary.ci95,
                "pass_rate": summary.pass_rate,
                "p50_latency_s": summary.p50_latency_s,
                "p95_latency_s": summary.p95_latency_s,
                "tokens_per_row": summary.tokens_per_row,
                "cost_per_row": summary.cost_per_row,
                "errors": float(summary.errors),
            }
            client.log_batch(
                run_id,
                metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items() if v is not None],
                tags=[RunTag("mahsm.winner", str(summary.config_id == state.winner).lower())],
            )
            client.set_terminated(run_id)
    runs = 0
    for branch in state.branches:
        if branch.status in ("pending", "running"):
            continue
        found_run = existing.get(branch.key)
        if found_run is not None and found_run.info.status in ("FINISHED", "FAILED"):
            runs += 1
            continue
        tags = {
            **base_tags,
            TAG_BRANCH: branch.key,
            "mahsm.config_id": branch.config_id,
            "mahsm.role": branch.role,
            "mahsm.task_ids": ",".join(branch.task_ids)[:5000],
            "mahsm.status": branch.status,
        }
        if branch.config_id in parents:
            tags["mlflow.parentRunId"] = parents[branch.config_id]
        if found_run is None:
            label = branch.config.display()[:150]
            row = "" if branch.row is None else f" row {branch.row}"
            run_id = client.create_run(experiment_id, run_name=label + row, tags=tags).info.run_id
        else:
            run_id = found_run.info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), 0, 0) for k, v in _metrics(branch).items()],
            params=[Param(k, v[:6000]) for k, v in _params(branch).items()],
            tags=[RunTag(k, v) for k, v in tags.items()],  # a run an earlier attempt began
        )
        client.log_text(run_id, _outputs(branch, texts or {}), "outputs.json")
        client.set_terminated(run_id, status="FINISHED" if branch.status == "success" else "FAILED")
        runs += 1
        if on_run is not None:
            on_run(runs)
    return MlflowSync(status="synced", experiment_id=experiment_id, runs=runs)
