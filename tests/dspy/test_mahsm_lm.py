"""`MahsmLM`: DSPy programs on MAHSM's providers, in a notebook and in a durable step."""

from __future__ import annotations

from pathlib import Path

import dspy
import yaml

from mahsm.activities.dspy_lm import MahsmLM
from mahsm.contracts.task import TaskStatus
from mahsm.settings import Settings
from tests.activities.llm.llm_fake_server import FakeLLMServer, Reply, openai_completion
from tests.dspy.helpers import chat, pipeline, rule, run


def test_a_notebook_program_runs_unchanged_on_the_openai_provider(
    openai_server: FakeLLMServer, data_dir: Path
) -> None:
    openai_server.queue(
        Reply(200, openai_completion(content=chat(reasoning="it is", answer="Paris")))
    )
    lm = MahsmLM("openai/gpt-4o-mini", settings=Settings(_env_file=None, data_dir=data_dir))
    with dspy.context(lm=lm):
        result = dspy.ChainOfThought("question -> answer")(question="Capital of France?")

    assert result.answer == "Paris"
    (sent,) = openai_server.received
    messages = sent.body["messages"]
    assert messages[0]["role"] == "system" and "`question`" in messages[0]["content"]
    assert "Capital of France?" in messages[-1]["content"]
    assert lm.calls == 1 and lm.usage.input_tokens == 11


async def test_an_async_program_on_the_scripted_provider(data_dir: Path) -> None:
    scenario = data_dir / "lm.yaml"
    scenario.write_text(yaml.safe_dump({"rules": [rule(".*", chat(n=7))]}))
    settings = Settings(_env_file=None, data_dir=data_dir, scripted_scenario=scenario)
    lm = MahsmLM("scripted/any", settings=settings, subtask_id="x")
    with dspy.context(lm=lm):
        result = await dspy.Predict("text -> n: int").acall(text="seven")
    assert result.n == 7
    assert lm.served_by == "scripted/any"


async def test_a_signature_step_on_the_openai_provider(
    engine_factory, openai_server: FakeLLMServer
) -> None:
    openai_server.queue(
        Reply(200, openai_completion(content=chat(category="billing", urgent=True)))
    )
    p = pipeline(
        [
            {
                "name": "triage",
                "kind": "signature",
                "model": "openai/gpt-4o-mini",
                "signature": "ticket -> category: Literal['billing', 'tech'], urgent: bool",
                "instructions": "Triage the support ticket.",
            }
        ],
        inputs={"ticket": "str"},
        outputs={"category": "{triage.category}", "urgent": "{triage.urgent}"},
    )
    async with engine_factory({"rules": []}) as engine:
        state = await (await engine.start(run(p, ticket="I was charged twice"))).result()

    assert state.status == TaskStatus.COMPLETED, state.error
    assert state.outputs == {"category": "billing", "urgent": True}
    (sent,) = openai_server.received
    system = sent.body["messages"][0]["content"]
    assert "Triage the support ticket." in system
    assert "I was charged twice" in sent.body["messages"][-1]["content"]
    assert state.subtask("triage").result.model == "openai/gpt-4o-mini"
