"""Fixtures of the tool tests: settings on a per-test data dir, contexts, the activity."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from activities.blobs import BlobStore
from activities.tools import ToolActivities, ToolContext, ToolRegistry, default_registry
from mahsm.contracts.llm import ToolCall
from mahsm.contracts.task import Capability
from mahsm.contracts.tools import ToolInvocation
from mahsm.settings import Settings


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    return Settings(_env_file=None, data_dir=data_dir, **overrides)


@pytest.fixture
def tool_settings(data_dir: Path) -> Settings:
    return make_settings(data_dir, tool_timeout_s=5.0)


@pytest.fixture
def settings_with(data_dir: Path) -> Callable[..., Settings]:
    """`settings_with(tool_timeout_s=...)`: settings on the test's data dir with overrides."""
    return lambda **overrides: make_settings(data_dir, **overrides)


@pytest.fixture
def make_context(tool_settings: Settings) -> Callable[..., ToolContext]:
    """`make_context(task_id=..., pool=...)`: a ToolContext on the test's data dir."""

    def make(
        *,
        task_id: str = "task-1",
        pool: asyncpg.Pool | None = None,
        settings: Settings | None = None,
        key: str = "wf:run:1",
    ) -> ToolContext:
        settings = settings or tool_settings
        return ToolContext(
            task_id=task_id,
            subtask_id="s1",
            workspace=settings.workspace_root() / task_id,
            pool=pool,  # type: ignore[arg-type]
            blobs=BlobStore(pool, threshold_bytes=settings.claim_check_bytes),  # type: ignore[arg-type]
            idempotency_key=key,
            settings=settings,
        )

    return make


def _invocation(
    name: str,
    arguments: str = "{}",
    *,
    task_id: str = "task-1",
    capabilities: list[Capability] | None = None,
    call_id: str = "call-1",
) -> ToolInvocation:
    return ToolInvocation(
        task_id=task_id,
        subtask_id="s1",
        call=ToolCall(id=call_id, name=name, arguments=arguments),
        capabilities=list(Capability) if capabilities is None else capabilities,
    )


@pytest.fixture
def make_invocation() -> Callable[..., ToolInvocation]:
    """`make_invocation(name, arguments_json, capabilities=...)`: one tool call."""
    return _invocation


@pytest.fixture
def make_activities(
    db_pool: asyncpg.Pool, tool_settings: Settings
) -> Callable[..., ToolActivities]:
    """`make_activities(registry=..., **settings_overrides)`: a ToolActivities on real Postgres."""

    def make(registry: ToolRegistry | None = None, **overrides: Any) -> ToolActivities:
        settings = (
            make_settings(tool_settings.data_dir, **{"tool_timeout_s": 5.0, **overrides})
            if overrides
            else tool_settings
        )
        return ToolActivities(
            pool=db_pool,
            settings=settings,
            blobs=BlobStore(db_pool, threshold_bytes=settings.claim_check_bytes),
            registry=registry or default_registry(),
        )

    return make
