"""`mahsm run`: `-i` values typed by the pipeline's declared inputs; file and input errors
exit 2 naming the file, field or input, before anything is sent (no API is running here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mahsm.cli import common as cli_common
from mahsm.cli.main import app
from mahsm.cli.run import InputError, convert, parse_inputs
from mahsm.contracts.pipeline import Pipeline

EXAMPLE = Path(__file__).parents[2] / "examples/pipelines/ticket_triage.yaml"
# Nothing listens here: a command that got as far as the API would exit 5 (unreachable).
NOWHERE = "http://127.0.0.1:9"

TYPED = Pipeline.model_validate(
    {
        "name": "typed",
        "inputs": {
            "text": "str",
            "count": "int",
            "ratio": "float",
            "strict": "bool",
            "tags": "list",
            "extra": "dict",
            "anything": "any",
        },
        "steps": [{"name": "echo", "kind": "llm", "prompt": "{text}"}],
    }
)
ALL = [
    "text=a=b",
    "count=3",
    "ratio=0.5",
    "strict=yes",
    'tags=["x", 2]',
    'extra={"k": 1}',
    "anything=plain words",
]


@pytest.fixture(autouse=True)
def wide_console() -> None:
    cli_common.console.width = 200
    cli_common.errors.width = 200


def test_values_are_converted_by_declared_type() -> None:
    values = parse_inputs(TYPED, ALL)
    assert values == {
        "text": "a=b",
        "count": 3,
        "ratio": 0.5,
        "strict": True,
        "tags": ["x", 2],
        "extra": {"k": 1},
        "anything": "plain words",
    }
    assert convert("anything", "any", "[1, 2]") == [1, 2]
    assert convert("strict", "bool", "0") is False
    assert convert("ratio", "float", "2") == 2.0


@pytest.mark.parametrize(
    ("pairs", "words"),
    [
        (["count=three"], "input 'count' is an int; got 'three'"),
        (["ratio=fast"], "input 'ratio' is a float"),
        (["strict=maybe"], "input 'strict' is a bool"),
        (["tags=[1,"], "input 'tags' is a list written as JSON"),
        (['tags={"a": 1}'], "input 'tags' is a list; got JSON dict"),
        (["extra=[]"], "input 'extra' is a dict; got JSON list"),
        (["nope=1"], "'nope' is not an input of pipeline 'typed'; inputs: text (str)"),
        (["count"], "-i 'count': write -i name=value"),
        (["count=1", "count=2"], "input 'count' is given twice"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_input(pairs: list[str], words: str) -> None:
    others = [pair for pair in ALL if pair.split("=")[0] not in {p.split("=")[0] for p in pairs}]
    with pytest.raises(InputError) as raised:
        parse_inputs(TYPED, others + pairs)
    assert words in str(raised.value)


def test_missing_inputs_are_named_with_their_types() -> None:
    with pytest.raises(InputError) as raised:
        parse_inputs(TYPED, ["text=hi"])
    assert "count (int)" in str(raised.value) and "tags (list)" in str(raised.value)


def test_cli_exits_2_on_a_bad_input_before_calling_the_api() -> None:
    result = CliRunner().invoke(app, ["run", str(EXAMPLE), "-i", "ticket=hi", "--api", NOWHERE])
    assert result.exit_code == 2, result.output
    assert "missing input(s) of pipeline 'ticket-triage': customer (str)" in result.output


def test_cli_exits_2_on_an_invalid_file_naming_file_and_field(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "name: broken\nsteps:\n  - {name: draft, kind: llm}\n  - {name: send, kind: email}\n"
    )
    not_yaml = tmp_path / "tabs.yaml"
    not_yaml.write_text("name: [unclosed\n")
    results = [
        CliRunner().invoke(app, ["run", str(path), "--api", NOWHERE])
        for path in (broken, not_yaml, tmp_path / "missing.yaml")
    ]
    for result in results:
        assert result.exit_code == 2, result.output
    assert f"{broken}: steps.draft.prompt: Field required" in results[0].output
    assert "steps.send.kind: Input tag 'email'" in results[0].output
    assert "not valid YAML" in results[1].output
    assert "missing.yaml: cannot read" in results[2].output


def test_cli_exits_2_on_a_name_that_is_no_file_nor_pipeline() -> None:
    result = CliRunner().invoke(app, ["run", "Not A Name", "--api", NOWHERE])
    assert result.exit_code == 2
    assert "neither a pipeline file" in result.output
