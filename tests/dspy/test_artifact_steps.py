"""`signature` steps with `artifact: name@version`: its instructions and demos reach the model;
tools are checked before the first LM call."""

from __future__ import annotations

import dspy
import pytest
from temporalio.client import WorkflowFailureError

from mahsm import prompt
from mahsm.contracts.llm import ToolSpec
from mahsm.contracts.task import TaskStatus
from tests.activities.llm.llm_fake_server import FakeLLMServer, Reply, openai_completion
from tests.dspy.helpers import activity_ids, chat, pipeline, run

TUNED = "You triage tickets for ACME. Billing means money; tech means software."


def _tuned() -> dspy.Predict:
    program = dspy.Predict(dspy.Signature("ticket: str -> category: str").with_instructions(TUNED))
    program.demos = [dspy.Example(ticket="my card was charged twice", category="billing")]
    return program


async def test_a_step_using_an_artifact_sends_its_instructions_and_demos(
    engine_factory, openai_server: FakeLLMServer
) -> None:
    openai_server.queue(Reply(200, openai_completion(content=chat(category="billing"))))
    async with engine_factory({"rules": []}) as engine:
        ref = await prompt.save(_tuned(), "triage", pool=engine.pool)
        p = pipeline(
            [
                {
                    "name": "triage",
                    "kind": "signature",
                    "model": "openai/gpt-4o-mini",
                    "signature": "ticket: str -> category: str",
                    "artifact": f"triage@{ref.version}",
                }
            ],
            inputs={"ticket": "str"},
        )
        state = await (await engine.start(run(p, ticket="refund please"))).result()

    assert state.status == TaskStatus.COMPLETED, state.error
    assert state.subtask("triage").result.value == {"category": "billing"}
    (sent,) = openai_server.received
    text = "\n".join(m["content"] for m in sent.body["messages"])
    assert TUNED in sent.body["messages"][0]["content"]
    assert "my card was charged twice" in text  # the demo
    assert "refund please" in sent.body["messages"][-1]["content"]


async def test_tool_mismatch_or_unknown_artifact_fails_before_any_lm_call(
    engine_factory,
) -> None:
    saved_calc = ToolSpec(
        name="calculator",
        description="calc",
        parameters={"type": "object", "properties": {"expr": {"type": "string"}}},
    )
    react = dspy.ReAct("question -> answer: int", tools=[])
    async with engine_factory({"rules": []}) as engine:
        await prompt.save(react, "agent", tools=[saved_calc], pool=engine.pool)
        step = {
            "name": "agent",
            "kind": "signature",
            "module": "react",
            "signature": "question -> answer: int",
            "tools": ["calculator"],
            "artifact": "agent@1",
        }
        for artifact, words in [
            ("agent@1", "parameter 'expr' was renamed to 'expression'"),
            ("agent@9", "'agent' has no version 9"),
            ("nope", "no prompt artifact named 'nope'"),
        ]:
            p = pipeline([{**step, "artifact": artifact}], inputs={"question": "str"})
            handle = await engine.start(run(p, question="6*7?"))
            with pytest.raises(WorkflowFailureError):
                await handle.result()
            state = await engine.state(handle)
            error = state.subtask("agent").result.error or ""
            assert state.status == TaskStatus.FAILED
            assert words in error and "steps.agent.artifact" in error, error
            ids = activity_ids((await handle.fetch_history()).events)
            assert not [i for i in ids if i.startswith("agent/dspy")]
