"""Prompt artifacts: save/load round trip, versions, tool checks, files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dspy
import pytest

from mahsm import prompt
from mahsm.activities.tools.registry import default_registry
from mahsm.contracts.llm import ToolSpec
from mahsm.prompt import ArtifactNotFound, PromptValidationError
from tests.dspy.programs import DraftThenCheck

CALCULATOR = default_registry().get("calculator")


def _program(instructions: str = "Answer briefly.") -> dspy.ChainOfThought:
    program = dspy.ChainOfThought(
        dspy.Signature(
            "question: str, context: list[str] -> answer: str, confidence: float"
        ).with_instructions(instructions)
    )
    program.predict.demos = [
        dspy.Example(question=f"q{i}", context=["c"], reasoning="r", answer=f"a{i}", confidence=0.5)
        for i in range(3)
    ]
    return program


def _tool(name: str, **properties: str) -> ToolSpec:
    return ToolSpec(
        name=name,
        description=f"the {name} tool",
        parameters={
            "type": "object",
            "properties": {p: {"type": t} for p, t in properties.items()},
            "required": list(properties),
        },
    )


SEARCH = _tool("search", query="string", limit="integer")


async def test_save_then_load_gives_an_equal_program(db_pool) -> None:
    program = _program()
    ref = await prompt.save(
        program, "qa", tools=[SEARCH, CALCULATOR], model="openai/x", pool=db_pool
    )
    loaded = await prompt.load("qa", ref.version, tools=[SEARCH, CALCULATOR], pool=db_pool)

    assert isinstance(loaded, dspy.ChainOfThought)
    assert loaded.dump_state() == json.loads(json.dumps(program.dump_state()))
    assert loaded.predict.signature.instructions == "Answer briefly."
    assert loaded.predict.signature.output_fields["confidence"].annotation is float
    assert [d["answer"] for d in loaded.predict.demos] == ["a0", "a1", "a2"]
    stored = await prompt.ArtifactStore(db_pool).get("qa", ref.version)
    assert set(stored["tools"]) == {"search", "calculator"}
    assert stored["model"] == "openai/x" and stored["dependencies"]["dspy"]


async def test_identical_content_keeps_its_version_and_new_content_gets_the_next(db_pool) -> None:
    first = await prompt.save(_program(), "same", pool=db_pool)
    again = await prompt.save(_program(), "same", pool=db_pool)
    other = await prompt.save(_program("Answer at length."), "same", pool=db_pool)
    assert (first.version, again.version, other.version) == (1, 1, 2)
    assert again.content_hash == first.content_hash
    latest = await prompt.load("same", pool=db_pool)
    assert latest.predict.signature.instructions == "Answer at length."


async def test_a_custom_module_is_rebuilt_from_its_class(db_pool) -> None:
    program = DraftThenCheck()
    program.draft.signature = program.draft.signature.with_instructions("Draft it well.")
    await prompt.save(program, "custom", pool=db_pool)
    loaded = await prompt.load("custom", pool=db_pool)
    assert isinstance(loaded, DraftThenCheck)
    assert loaded.draft.signature.instructions == "Draft it well."


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ([], "tool 'search' is missing"),
        (
            [_tool("search", query="string", limit="integer", lang="string")],
            "new required parameter 'lang'",
        ),
        (
            [_tool("search", query="string", limit="string")],
            'parameter \'limit\' changed type from "integer" to "string"',
        ),
        ([_tool("search", q="string", limit="integer")], "parameter 'query' was renamed to 'q'"),
        ([_tool("search", limit="integer")], "parameter 'query' is missing"),
    ],
)
async def test_each_tool_mismatch_is_reported(db_pool, given: list[Any], problem: str) -> None:
    await prompt.save(_program(), "tooled", tools=[SEARCH], pool=db_pool)
    with pytest.raises(PromptValidationError) as raised:
        await prompt.load("tooled", tools=given, pool=db_pool)
    assert any(problem in found for found in raised.value.problems), raised.value.problems
    assert "tooled@1" in str(raised.value)


async def test_every_mismatch_is_listed_at_once(db_pool) -> None:
    await prompt.save(_program(), "two", tools=[SEARCH, CALCULATOR], pool=db_pool)
    with pytest.raises(PromptValidationError) as raised:
        await prompt.load("two", tools=[_tool("search", q="string", limit="string")], pool=db_pool)
    assert len(raised.value.problems) == 3


async def test_unknown_name_or_version_is_a_clear_not_found(db_pool) -> None:
    await prompt.save(_program(), "known", pool=db_pool)
    with pytest.raises(ArtifactNotFound, match="no prompt artifact named 'nope'"):
        await prompt.load("nope", pool=db_pool)
    with pytest.raises(ArtifactNotFound, match="'known' has no version 7; versions: 1"):
        await prompt.load("known", 7, pool=db_pool)


async def test_export_and_import_a_file(db_pool, tmp_path: Path) -> None:
    ref = await prompt.save(_program(), "moved", tools=[SEARCH], pool=db_pool)
    path = await prompt.export("moved", ref.version, tmp_path, pool=db_pool)
    assert path.name == "moved_v1.json"
    assert [p.name for p in tmp_path.iterdir()] == ["moved_v1.json"]  # no temporary left

    imported = await prompt.import_file(path, name="moved-copy", pool=db_pool)
    assert imported.version == 1 and imported.content_hash == ref.content_hash
    again = await prompt.import_file(path, pool=db_pool)  # the same content: the same version
    assert str(again) == "moved@1"

    data = json.loads(path.read_text())
    data["program"]["state"]["predict"]["demos"] = []
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="does not match its content_hash"):
        await prompt.import_file(path, pool=db_pool)
