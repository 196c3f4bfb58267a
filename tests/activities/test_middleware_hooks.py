"""Run and step hooks: the `middleware_hook` activity and `run_hook`, and where middleware
comes from (built-ins, `MAHSM_MIDDLEWARE_MODULES`, entry points).

A workflow of the tests' own (`HookProbeWorkflow`) calls `run_hook` as the task workflow
does, on a real Temporal dev server, with the worker's `engine_defaults` and
`middleware_hook` activities built by `build_workers`' own classes.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from mahsm.activities.engine import EngineActivities
from mahsm.activities.llm.middleware import (
    MiddlewareConfigError,
    MiddlewareRegistry,
    detect,
)
from mahsm.activities.llm.middleware.activity import MiddlewareActivities
from mahsm.contracts.middleware import RunInfo, StepError, StepInfo
from mahsm.settings import Settings
from tests.activities import middleware_plugins
from tests.activities.middleware_hook_workflow import HookProbeWorkflow, HookRun, HookRunResult

PLUGINS = "tests.activities.middleware_plugins"


def _settings(data_dir: Path, **overrides: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir,
        middleware_modules=[PLUGINS],
        **overrides,
    )


async def _probe(
    env: WorkflowEnvironment, settings: Settings, task_queue: str, chosen: list[str] | None
) -> tuple[HookRunResult | WorkflowFailureError, list[str]]:
    """Run the probe workflow; its result (or failure) and the activity ids it scheduled."""
    registry = MiddlewareRegistry.from_settings(settings)
    engine = EngineActivities(settings=settings, client=env.client, middleware=registry)
    hooks = MiddlewareActivities(registry=registry)
    workflow_id = f"hooks-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[HookProbeWorkflow],
        activities=[engine.engine_defaults, hooks.run_hook],
    ):
        result: HookRunResult | WorkflowFailureError
        try:
            result = await env.client.execute_workflow(
                HookProbeWorkflow.run, HookRun(chosen=chosen), id=workflow_id, task_queue=task_queue
            )
        except WorkflowFailureError as failure:
            result = failure
    scheduled = [
        event.activity_task_scheduled_event_attributes.activity_id
        async for event in env.client.get_workflow_handle(workflow_id).fetch_history_events()
        if event.HasField("activity_task_scheduled_event_attributes")
    ]
    return result, scheduled


async def test_hooks_of_the_worker_default_run_in_the_hook_activity(
    temporal_env: WorkflowEnvironment, task_queue: str, data_dir: Path
) -> None:
    middleware_plugins.SEEN.clear()
    settings = _settings(data_dir, middleware=["pii", "audit"])
    result, scheduled = await _probe(temporal_env, settings, task_queue, chosen=None)

    assert isinstance(result, HookRunResult)
    assert [r.ran if r else None for r in result.results] == [["audit"]] * 3
    assert scheduled == ["hook-on_run_start", "hook-on_step_error-s1", "hook-on_run_end"]
    hooks = [hook for hook, _ in middleware_plugins.SEEN]
    assert hooks == ["on_run_start", "on_step_error", "on_run_end"]
    start, (step, error), end = (payload for _, payload in middleware_plugins.SEEN)
    assert isinstance(start, RunInfo) and start.user_id == "alice" and start.status is None
    assert isinstance(step, StepInfo) and (step.step_id, step.kind) == ("s1", "llm")
    assert isinstance(error, StepError) and error.message == "bad prompt"
    assert isinstance(end, RunInfo) and (end.status, end.error) == ("failed", "step s1 failed")


@pytest.mark.parametrize(
    ("default", "chosen"),
    [([], None), (["audit"], []), (["audit"], ["pii", "injection_guard:block"])],
)
async def test_no_activity_is_scheduled_when_no_chosen_middleware_has_hooks(
    temporal_env: WorkflowEnvironment,
    task_queue: str,
    data_dir: Path,
    default: list[str],
    chosen: list[str] | None,
) -> None:
    middleware_plugins.SEEN.clear()
    settings = _settings(data_dir, middleware=default)
    result, scheduled = await _probe(temporal_env, settings, task_queue, chosen=chosen)
    assert isinstance(result, HookRunResult) and result.results == [None, None, None]
    assert scheduled == [] and middleware_plugins.SEEN == []


async def test_an_abort_at_run_start_fails_the_hook_without_retry(
    temporal_env: WorkflowEnvironment, task_queue: str, data_dir: Path
) -> None:
    result, scheduled = await _probe(
        temporal_env, _settings(data_dir), task_queue, chosen=["gatekeeper"]
    )
    assert isinstance(result, WorkflowFailureError)
    assert isinstance(result.cause, ActivityError)
    cause = result.cause.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "AbortedByMiddleware" and cause.non_retryable
    assert cause.message == (
        "aborted by middleware 'gatekeeper' in on_run_start: runs are closed for maintenance"
    )
    assert scheduled == ["hook-on_run_start"]


async def test_engine_defaults_carry_the_default_and_the_hooked_middleware(
    temporal_env: WorkflowEnvironment, data_dir: Path
) -> None:
    settings = _settings(data_dir, middleware=["pii:block", "first"])
    engine = EngineActivities(settings=settings, client=temporal_env.client)
    from mahsm.contracts.engine import DefaultsRequest

    defaults = await engine.engine_defaults(DefaultsRequest())
    assert defaults.middleware == ["pii:block", "first"]
    assert defaults.hooked_middleware == ["audit", "gatekeeper"]


def test_modules_setting_registers_every_named_middleware_class(data_dir: Path) -> None:
    registry = MiddlewareRegistry.from_settings(_settings(data_dir))
    assert registry.names == [
        "audit",
        "critical_exploding",
        "exploding",
        "first",
        "gatekeeper",
        "injection_guard",
        "pii",
        "second",
    ]
    assert registry.problems(["second:quiet", "second"]) == []
    assert "has no mode 'x'" in registry.problems(["first:x"])[0]
    assert "none (use the bare name)" in registry.problems(["first:x"])[0]


def test_a_modules_setting_that_cannot_be_imported_fails_clearly(data_dir: Path) -> None:
    with pytest.raises(MiddlewareConfigError, match="MAHSM_MIDDLEWARE_MODULES: cannot import"):
        MiddlewareRegistry.from_settings(
            _settings(data_dir).model_copy(update={"middleware_modules": ["no_such_module_xyz"]})
        )
    with pytest.raises(MiddlewareConfigError, match="defines no Middleware subclass"):
        MiddlewareRegistry(modules=["json"])


def test_entry_points_register_middleware_and_a_broken_one_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "mahsm_mw_test_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: mahsm-mw-test-plugin\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text(
        "[mahsm.middleware]\n"
        f"audit_plugin = {PLUGINS}:Audit\n"
        "broken_plugin = no_such_module_xyz:Thing\n"
        f"not_a_class = {PLUGINS}:SEEN\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = MiddlewareRegistry()
    assert "audit_plugin" in registry.names and "audit_plugin" in registry.hooked()
    assert registry.chain(["audit_plugin"]).middleware[0].label == "audit_plugin"
    [broken] = registry.problems(["broken_plugin"])
    assert "failed to load" in broken and "no_such_module_xyz" in broken
    [not_a_class] = registry.problems(["not_a_class"])
    assert "is not a subclass of Middleware" in not_a_class


def test_detect_outside_a_hook_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="only be called from a middleware hook"):
        detect("email")
