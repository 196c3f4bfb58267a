"""What a prompt artifact holds, how it is hashed, and how tools are checked against it.

An artifact is JSON: the program's DSPy state (`dump_state`: instructions, signature
fields, demos per predictor), how to rebuild the program (module kind and typed signature,
or a `dspy.Module` class path), the OpenAI-format schemas of the tools it uses, the model it
was tuned for and the versions of DSPy and MAHSM. The content hash covers what the program
does (program, tools, model), so saving the same program twice finds the stored version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

from mahsm.contracts.llm import ToolSpec

# DSPy is imported by the functions that need it: the API reads and writes artifacts
# (hashes, files) without paying for DSPy's import.

FORMAT = "mahsm.prompt/1"
ToolLike = ToolSpec | dict[str, Any] | Any
"""A ToolSpec, a registered tool (`default_registry().get(name)`: its `spec`), an OpenAI
function schema (`{name, description, parameters}`) or a `dspy.Tool`. Names are resolved by
the caller that has the tool registry (the worker resolves a step's tool names)."""


class PromptValidationError(ValueError):
    """The tools given do not match the tools the artifact was saved with."""

    def __init__(self, artifact: str, problems: list[str]) -> None:
        self.problems = problems
        listed = "\n".join(f"- {p}" for p in problems)
        super().__init__(
            f"the tools do not match prompt artifact {artifact}:\n{listed}\nFix the tools, or"
            " save a new version of the artifact with these tools"
        )


class ArtifactNotFound(LookupError):
    """No artifact of that name, or no such version of it."""


def tool_schema(tool: ToolLike) -> dict[str, Any]:
    """The OpenAI function schema of a tool: `{name, description, parameters}`."""
    if isinstance(tool, str):
        raise TypeError(
            f"tool {tool!r}: pass the tool, not its name, e.g."
            f" mahsm.activities.tools.registry.default_registry().get({tool!r})"
        )
    registered_spec = getattr(tool, "spec", None)
    if isinstance(registered_spec, ToolSpec):  # a registered tool
        tool = registered_spec
    if isinstance(tool, ToolSpec):
        return tool.model_dump()
    if isinstance(tool, dict):
        spec = tool.get("function", tool)  # {"type": "function", "function": {...}} too
        return ToolSpec.model_validate(spec).model_dump()
    import dspy

    if isinstance(tool, dspy.Tool):
        required = [name for name, schema in (tool.args or {}).items() if "default" not in schema]
        parameters = {"type": "object", "properties": dict(tool.args or {}), "required": required}
        return {"name": tool.name, "description": tool.desc or "", "parameters": parameters}
    raise TypeError(f"cannot read a tool schema from {type(tool).__name__}")


def check_tools(artifact: str, saved: dict[str, Any], given: Iterable[ToolLike]) -> None:
    """Raise `PromptValidationError` listing every way `given` differs from `saved`."""
    current = {schema["name"]: schema for schema in (tool_schema(t) for t in given)}
    problems: list[str] = []
    for name, schema in saved.items():
        if name not in current:
            problems.append(f"tool '{name}' is missing")
            continue
        problems += _parameter_problems(name, schema["parameters"], current[name]["parameters"])
    if problems:
        raise PromptValidationError(artifact, problems)


def _parameter_problems(tool: str, saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    before, after = saved.get("properties", {}), now.get("properties", {})
    required = set(now.get("required", []))
    gone = [p for p in before if p not in after]
    new = [p for p in after if p not in before]
    problems = []
    for name in gone:
        same_type = [p for p in new if _type(after[p]) == _type(before[name])]
        if same_type:  # one out, one of its type in: a rename
            renamed = same_type[0]
            new.remove(renamed)
            problems.append(f"tool '{tool}': parameter '{name}' was renamed to '{renamed}'")
        else:
            problems.append(f"tool '{tool}': parameter '{name}' is missing")
    for name in new:
        if name in required:
            problems.append(f"tool '{tool}': new required parameter '{name}'")
    for name in before:
        if name in after and _type(before[name]) != _type(after[name]):
            problems.append(
                f"tool '{tool}': parameter '{name}' changed type from"
                f" {_type(before[name])} to {_type(after[name])}"
            )
    return problems


def _type(schema: dict[str, Any]) -> str:
    found = schema.get("type")
    if found is None and "anyOf" in schema:
        found = [s.get("type") for s in schema["anyOf"]]
    return json.dumps(found)


def program_spec(program: Any) -> dict[str, Any]:
    """How to rebuild `program`: its module kind and typed signature, or its class path."""
    import dspy

    kinds = {dspy.Predict: "predict", dspy.ChainOfThought: "chain_of_thought"}
    kind = kinds.get(type(program))
    if kind is None:
        cls = type(program)
        spec: dict[str, Any] = {"class": f"{cls.__module__}.{cls.__qualname__}"}
        if isinstance(program, dspy.ReAct):
            spec["module"] = "react"
        return spec
    signature = program.signature if kind == "predict" else program.predict.signature
    if kind == "chain_of_thought":
        signature = signature.delete("reasoning")
    return {"module": kind, "signature": signature_text(signature)}


def signature_text(signature: Any) -> str | None:
    """The signature's string form with types, when DSPy parses it back to the same types."""
    from mahsm.dspy.signatures import parse_signature, type_name

    def side(fields: dict[str, Any]) -> str:
        return ", ".join(f"{name}: {type_name(f.annotation)}" for name, f in fields.items())

    text = f"{side(signature.input_fields)} -> {side(signature.output_fields)}"
    try:
        parsed = parse_signature(text)
    except ValueError:
        return None
    same = all(
        parsed.fields[name].annotation == field.annotation
        for name, field in signature.fields.items()
        if name in parsed.fields
    )
    return text if same and parsed.fields.keys() == signature.fields.keys() else None


def rebuild(spec: dict[str, Any]) -> Any:
    """A fresh program from `program_spec`'s output (its state is loaded afterwards)."""
    import dspy

    from mahsm.dspy.signatures import import_object, parse_signature

    if spec.get("signature"):
        module = {"predict": dspy.Predict, "chain_of_thought": dspy.ChainOfThought}
        return module[spec["module"]](parse_signature(spec["signature"]))
    if "class" in spec and spec.get("module") != "react":
        return import_object(spec["class"])()
    raise ValueError(
        "this artifact's program cannot be rebuilt from its description (a react program, or"
        " a signature with custom types); pass program=<a program of the same shape>"
    )


def body(program: Any, tools: Iterable[ToolLike], model: str | None) -> dict[str, Any]:
    """An artifact's content (without name, version, hash and time)."""
    state = json.loads(json.dumps(program.dump_state(), default=str))
    for predictor in state.values():  # the LM a program was tuned with is not saved
        if isinstance(predictor, dict) and "lm" in predictor:
            predictor["lm"] = None
    return {
        "format": FORMAT,
        "program": {**program_spec(program), "state": state},
        "tools": {schema["name"]: schema for schema in (tool_schema(t) for t in tools)},
        "model": model,
        "dependencies": {"dspy": _version("dspy"), "mahsm": _version("mahsm")},
    }


def content_hash(content: dict[str, Any]) -> str:
    """SHA-256 of what the program does: program, tools and model (not the versions)."""
    subject = {key: content.get(key) for key in ("program", "tools", "model")}
    return hashlib.sha256(json.dumps(subject, sort_keys=True).encode()).hexdigest()


def predictor_states(artifact: dict[str, Any]) -> list[dict[str, Any]]:
    """The saved state of each predictor (a `Predict` program's state is its own)."""
    state = artifact["program"]["state"]
    if "signature" in state:
        return [state]
    return [p for p in state.values() if isinstance(p, dict) and "signature" in p]


def instructions_of(artifact: dict[str, Any]) -> list[str]:
    """Every predictor's instructions in the artifact (for agents' prompts)."""
    return [p["signature"]["instructions"] for p in predictor_states(artifact)]


def agent_instructions(artifact: dict[str, Any]) -> str:
    """What an agent is told from an artifact: each predictor's instructions and demos.

    Demos become worked examples, one field per line (`ticket: ...`), so a few-shot program
    tuned by an optimizer guides an agent the way it guided its own predictor.
    """
    parts = [f"Instructions from prompt artifact {artifact['name']}@{artifact['version']}:"]
    for predictor in predictor_states(artifact):
        instructions = (predictor.get("signature") or {}).get("instructions")
        if instructions:
            parts.append(instructions)
        demos = [d for d in predictor.get("demos") or [] if isinstance(d, dict)]
        for number, demo in enumerate(demos, 1):
            fields = "\n".join(
                f"{key}: {value}" for key, value in demo.items() if not key.startswith("augmented")
            )
            parts.append(f"Example {number}:\n{fields}")
    return "\n\n".join(parts)


def _version(package: str) -> str | None:
    try:
        return package_version(package)
    except PackageNotFoundError:
        return None
