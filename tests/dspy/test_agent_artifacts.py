"""Agents using prompt artifacts (`options.artifact`, an agent step's `artifact`): the model
receives the artifact's instructions and demos; a missing artifact or a changed tool fails the
task when it starts, before any agent runs."""

from __future__ import annotations

import dspy
import pytest
from temporalio.client import WorkflowFailureError

from mahsm import prompt
from mahsm.activities.tools.registry import default_registry
from mahsm.contracts.llm import ToolSpec
from mahsm.contracts.task import (
    Capability,
    Plan,
    Subtask,
    SubtaskStatus,
    TaskOptions,
    TaskRequest,
    TaskStatus,
)
from tests.activities.llm.llm_fake_server import FakeLLMServer, Reply, openai_completion
from tests.dspy.helpers import activity_ids, pipeline, run

TUNED = "You answer for ACME support. Always quote the order number."
DEMO_TICKET = "order 1234 arrived broken"


def _tuned() -> dspy.Predict:
    program = dspy.Predict(dspy.Signature("ticket: str -> reply: str").with_instructions(TUNED))
    program.demos = [dspy.Example(ticket=DEMO_TICKET, reply="Sorry about order 1234.")]
    return program


def _system_text(body: dict) -> str:
    return "\n".join(m["content"] for m in body["messages"] if m["role"] == "system")


async def test_an_agent_of_a_planned_task_gets_the_tasks_artifact(
    engine_factory, openai_server: FakeLLMServer
) -> None:
    openai_server.queue(Reply(200, openai_completion(content="Refund issued for order 77.")))
    plan = Plan(
        subtasks=[
            Subtask(
                id="answer",
                description="Answer the ticket about order 77",
                required_capabilities=[Capability.DATA_ANALYSIS],
            )
        ]
    )
    async with engine_factory({"rules": []}) as engine:
        calculator = default_registry().get("calculator")
        ref = await prompt.save(_tuned(), "support", tools=[calculator], pool=engine.pool)
        options = TaskOptions(model="openai/gpt-4o-mini", artifact=f"support@{ref.version}")
        handle = await engine.start(
            TaskRequest(description="Answer the ticket", plan=plan, options=options)
        )
        state = await handle.result()

    assert state.status == TaskStatus.COMPLETED, state.error
    (sent,) = openai_server.received
    system = _system_text(sent.body)
    assert TUNED in system
    assert f"ticket: {DEMO_TICKET}" in system  # the demo, as a worked example
    assert f"support@{ref.version}" in system


async def test_a_pipeline_agent_step_uses_its_own_artifact(
    engine_factory, openai_server: FakeLLMServer
) -> None:
    openai_server.queue(Reply(200, openai_completion(content="done")))
    async with engine_factory({"rules": []}) as engine:
        await prompt.save(_tuned(), "support-step", pool=engine.pool)
        p = pipeline(
            [
                {
                    "name": "answer",
                    "kind": "agent",
                    "description": "Answer: {ticket}",
                    "model": "openai/gpt-4o-mini",
                    "artifact": "support-step",  # its latest version
                }
            ],
            inputs={"ticket": "str"},
        )
        state = await (await engine.start(run(p, ticket="where is order 5?"))).result()

    assert state.status == TaskStatus.COMPLETED, state.error
    (sent,) = openai_server.received
    assert TUNED in _system_text(sent.body)
    assert "where is order 5?" in sent.body["messages"][-1]["content"]


async def test_a_missing_artifact_or_changed_tool_fails_the_task_before_any_agent_runs(
    engine_factory, openai_server: FakeLLMServer
) -> None:
    renamed = ToolSpec(
        name="calculator",
        description="calc",
        parameters={"type": "object", "properties": {"expr": {"type": "string"}}},
    )
    plan = Plan(
        subtasks=[
            Subtask(id="a", description="Add", required_capabilities=[Capability.DATA_ANALYSIS])
        ]
    )
    async with engine_factory({"rules": []}) as engine:
        await prompt.save(_tuned(), "stale-tools", tools=[renamed], pool=engine.pool)
        for ref, words in [
            ("stale-tools@1", "parameter 'expr' was renamed to 'expression'"),
            ("never-saved", "no prompt artifact named 'never-saved'"),
        ]:
            options = TaskOptions(model="openai/gpt-4o-mini", artifact=ref)
            handle = await engine.start(
                TaskRequest(description="Add two numbers", plan=plan, options=options)
            )
            with pytest.raises(WorkflowFailureError):
                await handle.result()
            state = await engine.state(handle)
            assert state.status == TaskStatus.FAILED
            assert state.error is not None and state.error.startswith("options.artifact: ")
            assert words in state.error, state.error
            assert state.subtask("a").result.status == SubtaskStatus.PENDING
            ids = activity_ids((await handle.fetch_history()).events)
            assert not [i for i in ids if i.startswith("a/")], ids  # no agent call
    assert openai_server.received == []


def test_an_artifact_reference_is_checked_for_its_form() -> None:
    with pytest.raises(ValueError, match="artifact"):
        TaskOptions(artifact="Support@latest")
