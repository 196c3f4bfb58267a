"""`signature` steps on the engine: each module kind, typed outputs, parse retries, activities."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowFailureError

from mahsm.contracts.task import TaskStatus
from mahsm.pipelines import validate_pipeline
from tests.dspy.helpers import activity_ids, chat, pipeline, rule, run

SIGNATURE = (
    "question: str, context: list[str] -> answer: str, confidence: float,"
    " category: Literal['geo', 'math'], certain: bool, year: int, tags: list[str]"
)


async def test_predict_step_types_every_output_field(engine_factory) -> None:
    p = pipeline(
        [
            {"name": "ask", "kind": "signature", "signature": SIGNATURE},
            {"name": "echo", "kind": "llm", "prompt": "Category {ask.category}, year {ask.year}"},
        ],
        inputs={"question": "str", "context": "list"},
        outputs={"ask": "{ask}", "confidence": "{ask.confidence}", "echo": "{echo}"},
    )
    answer = chat(
        answer="Paris", confidence=0.9, category="geo", certain=True, year=1889, tags=["eu"]
    )
    async with engine_factory({"rules": [rule("ask", answer)]}) as engine:
        handle = await engine.start(
            run(p, question="Capital of France?", context=["France is in Europe"])
        )
        state = await handle.result()
        history = await handle.fetch_history()

    assert state.status == TaskStatus.COMPLETED, state.error
    outputs = state.outputs or {}
    assert outputs["ask"] == {
        "answer": "Paris",
        "confidence": 0.9,
        "category": "geo",
        "certain": True,
        "year": 1889,
        "tags": ["eu"],
    }
    assert outputs["confidence"] == 0.9
    assert outputs["echo"] == "Category geo, year 1889"  # the scripted default echoes
    ids = activity_ids(history.events)
    assert [i for i in ids if i.startswith("ask/")] == ["ask/dspy-0"]
    result = state.subtask("ask").result
    assert result.usage.input_tokens > 0 and result.model == "scripted/test"


async def test_chain_of_thought_and_a_pydantic_output(engine_factory) -> None:
    p = pipeline(
        [
            {
                "name": "think",
                "kind": "signature",
                "module": "chain_of_thought",
                "signature": "question -> answer: int",
                "instructions": "Answer with a number.",
            },
            {
                "name": "triage",
                "kind": "signature",
                "signature_class": "tests.dspy.programs.Triage",
                "inputs": {"text": "Ticket: {question}"},
            },
        ],
        inputs={"question": "str"},
        outputs={"n": "{think.answer}", "team": "{triage.ticket.team}", "all": "{triage}"},
    )
    scenario = {
        "rules": [
            rule("think", chat(reasoning="6 times 7", answer=42), match="Answer with a number"),
            rule("triage", chat(ticket={"team": "billing", "priority": 2})),
        ]
    }
    async with engine_factory(scenario) as engine:
        state = await (await engine.start(run(p, question="6*7?"))).result()
    assert state.status == TaskStatus.COMPLETED, state.error
    outputs = state.outputs or {}
    assert outputs["n"] == 42
    assert outputs["team"] == "billing"
    assert outputs["all"] == {"ticket": {"team": "billing", "priority": 2}}
    assert state.subtask("think").result.value == {"reasoning": "6 times 7", "answer": 42}


async def test_a_custom_module_makes_one_activity_per_lm_call(engine_factory) -> None:
    p = pipeline(
        [
            {
                "name": "prog",
                "kind": "signature",
                "program": "tests.dspy.programs.DraftThenCheck",
                "inputs": {"topic": "{topic}"},
            }
        ],
        inputs={"topic": "str"},
    )
    scenario = {
        "rules": [
            rule("prog", chat(ok=True), match=r"\[\[ ## draft ## \]\]\nA draft about"),
            rule("prog", chat(draft="A draft about {user}")),
        ]
    }
    async with engine_factory(scenario) as engine:
        handle = await engine.start(run(p, topic="tides"))
        state = await handle.result()
        history = await handle.fetch_history()
    assert state.status == TaskStatus.COMPLETED, state.error
    value = state.subtask("prog").result.value
    assert value is not None and value["ok"] is True and "A draft about" in value["draft"]
    assert [i for i in activity_ids(history.events) if i.startswith("prog/")] == [
        "prog/dspy-0",
        "prog/dspy-1",
    ]


async def test_react_calls_mahsm_tools_as_activities(engine_factory) -> None:
    p = pipeline(
        [
            {
                "name": "agent",
                "kind": "signature",
                "module": "react",
                "signature": "question -> answer: int",
                "tools": ["calculator"],
            }
        ],
        inputs={"question": "str"},
        outputs={"answer": "{agent.answer}"},
    )
    calc = chat(
        next_thought="compute", next_tool_name="calculator", next_tool_args={"expression": "6*7"}
    )
    done = chat(next_thought="done", next_tool_name="finish", next_tool_args={})
    scenario = {
        "rules": [
            rule("agent", done, match=r"next_tool_name[\s\S]*observation_0[\s\S]*42"),
            rule("agent", calc, match="next_tool_name"),
            rule("agent", chat(reasoning="the tool said 42", answer=42)),
        ]
    }
    async with engine_factory(scenario) as engine:
        handle = await engine.start(run(p, question="What is 6 times 7?"))
        state = await handle.result()
        history = await handle.fetch_history()
    assert state.status == TaskStatus.COMPLETED, state.error
    assert (state.outputs or {})["answer"] == 42
    ids = [i for i in activity_ids(history.events) if i.startswith("agent/")]
    assert ids == ["agent/dspy-0", "agent/tool-0", "agent/dspy-1", "agent/dspy-2"]


async def test_a_parse_failure_is_retried_with_the_error(engine_factory) -> None:
    p = pipeline(
        [{"name": "rate", "kind": "signature", "signature": "text -> score: float"}],
        inputs={"text": "str"},
    )
    scenario = {
        "rules": [
            rule("rate", chat(score=0.5), match="could not be read"),
            rule("rate", chat(score="very high")),
        ]
    }
    async with engine_factory(scenario) as engine:
        handle = await engine.start(run(p, text="great"))
        state = await handle.result()
        history = await handle.fetch_history()
    assert state.status == TaskStatus.COMPLETED, state.error
    assert state.subtask("rate").result.value == {"score": 0.5}
    assert [i for i in activity_ids(history.events) if i.startswith("rate/")] == [
        "rate/dspy-0",
        "rate/dspy-1",
    ]


async def test_a_parse_failure_fails_the_step_naming_field_and_type(engine_factory) -> None:
    p = pipeline(
        [
            {
                "name": "rate",
                "kind": "signature",
                "signature": "text -> score: float, label: str",
                "max_parse_retries": 1,
            }
        ],
        inputs={"text": "str"},
    )
    scenario = {"rules": [rule("rate", chat(score="very high", label="x"))]}
    async with engine_factory(scenario) as engine:
        handle = await engine.start(run(p, text="great"))
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await engine.state(handle)
        history = await handle.fetch_history()
    assert state.status == TaskStatus.FAILED
    error = state.subtask("rate").result.error or ""
    assert "field 'score' is not a valid float" in error, error
    assert "after 2 attempt(s)" in error
    assert len([i for i in activity_ids(history.events) if i.startswith("rate/")]) == 2


@pytest.mark.parametrize(
    ("step", "field", "words"),
    [
        ({"signature": "a: nosuchtype -> b"}, "steps.s.signature", "Unknown name: nosuchtype"),
        ({"signature": "a b -> c"}, "steps.s.signature", "cannot parse"),
        ({"signature": "question -> "}, "steps.s.signature", "no output field"),
        ({"signature": "a, b -> a"}, "steps.s.signature", "distinct names"),
        ({"signature_class": "tests.dspy.programs.Nope"}, "steps.s.signature_class", "no 'Nope'"),
        ({"program": "tests.dspy.programs.Ticket"}, "steps.s.program", "not a dspy.Module"),
        ({"signature": "q -> a", "inputs": {"x": "{q}"}}, "steps.s.inputs.x", "not an input"),
        ({"signature": "q -> a", "module": "react"}, "steps.s.tools", "needs at least one"),
        (
            {"signature": "q -> a", "module": "react", "tools": ["nope"]},
            "steps.s.tools",
            "no tool named 'nope'",
        ),
        ({"signature": "zz -> a"}, "steps.s.inputs", "{zz} names no input"),
        ({}, "steps.s.signature", "exactly one"),
    ],
)
def test_a_malformed_signature_step_is_a_validation_problem(
    step: dict[str, object], field: str, words: str
) -> None:
    from mahsm.pipelines.validation import Catalogue

    p = pipeline([{"name": "s", "kind": "signature", **step}], inputs={"q": "str"})
    problems = validate_pipeline(p, Catalogue(tools=lambda name: name == "calculator"))
    assert any(pr.field == field and words in pr.message for pr in problems), problems
