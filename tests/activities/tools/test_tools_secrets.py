"""The worker's secrets never leave `tool_execute`: not in results, errors or failures."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from mahsm.activities.tools import ToolActivities, default_registry
from mahsm.contracts.tools import ToolInvocation

CANARY = "canary-db-password-5e1f"  # no known shape: only its value gives it away
KEY = "sk-canary-0123456789abcdef"


@pytest.fixture
def leaky_activities(
    monkeypatch: pytest.MonkeyPatch, make_activities: Callable[..., ToolActivities]
) -> ToolActivities:
    monkeypatch.setenv("WAREHOUSE_PASSWORD", CANARY)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    registry = default_registry().copy()

    @registry.tool(capabilities=None)
    def dump_env(name: str) -> str:
        """Show a configuration value.

        Args:
            name: What to show.
        """
        return f"{name}: password={CANARY} key={KEY}"

    @registry.tool(capabilities=None)
    def failing(mode: str) -> str:
        """Fail.

        Args:
            mode: "tool" for a tool bug, "network" for an outage.
        """
        if mode == "network":
            raise ConnectionRefusedError(f"connect to postgresql://u:{CANARY}@db refused")
        raise RuntimeError(f"could not log in with {CANARY}")

    return make_activities(registry)


async def test_tool_results_and_errors_shown_to_the_model_are_redacted(
    leaky_activities: ToolActivities, make_invocation: Callable[..., ToolInvocation]
) -> None:
    shown = await leaky_activities.run(
        make_invocation("dump_env", '{"name": "db"}'), idempotency_key="k1"
    )
    assert shown.content == "db: password=[REDACTED] key=[REDACTED]"
    failed = await leaky_activities.run(
        make_invocation("failing", '{"mode": "tool"}'), idempotency_key="k2"
    )
    assert failed.is_error
    assert failed.content == "Tool 'failing' failed: RuntimeError: could not log in with [REDACTED]"


async def test_an_infrastructure_failure_is_retried_without_the_secret(
    leaky_activities: ToolActivities, make_invocation: Callable[..., ToolInvocation]
) -> None:
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(
            leaky_activities.execute, make_invocation("failing", '{"mode": "network"}')
        )
    error = raised.value
    assert not error.non_retryable and error.type == "ConnectionRefusedError"
    assert CANARY not in error.message and error.__cause__ is None
    assert error.message == (
        "tool 'failing': ConnectionRefusedError: connect to postgresql://u:[REDACTED]@db refused"
    )
