"""DSPy signatures of `signature` steps: parsed by DSPy, cached, checked before a run.

The string form is parsed by DSPy's own parser (`dspy.Signature("a: str -> b: int")`);
parsing costs milliseconds, so parsed signatures are cached per string (a DSPy signature
class is immutable: `with_instructions` makes a new one). Problems come back as
`(field, message)` pairs naming the step's field, for the pipeline validator's 422.
"""

from __future__ import annotations

import types
import typing
from functools import lru_cache
from typing import Any

import dspy
from pydantic import BaseModel

from mahsm.code_imports import CodeNotAllowed, import_allowed
from mahsm.contracts.pipeline import SignatureStep

Problem = tuple[str, str]
"""(field of the step, what is wrong and how to fix it)."""

MODULE_KINDS = {
    "predict": dspy.Predict,
    "chain_of_thought": dspy.ChainOfThought,
}


class SignatureError(ValueError):
    """A signature or program that cannot be used; the message names the step's field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@lru_cache(maxsize=512)
def parse_signature(text: str) -> type[dspy.Signature]:
    """DSPy's signature for `text`, parsed once per string.

    Raises:
        SignatureError: naming `signature`, when DSPy cannot parse it or it has no outputs.
    """
    try:
        parsed: type[dspy.Signature] = dspy.Signature(text)
    except (ValueError, SyntaxError, TypeError, NameError) as error:
        raise SignatureError(
            "signature",
            f"DSPy cannot parse {text!r}: {error}. Write 'in1: type, in2 -> out: type' with"
            " types such as str, int, float, bool, list[str], dict[str, int], Literal['a', 'b']",
        ) from None
    if not parsed.output_fields:
        raise SignatureError(
            "signature", f"{text!r} has no output field; add one after '->', e.g. '-> answer: str'"
        )
    return parsed


@lru_cache(maxsize=256)
def import_object(path: str) -> Any:
    """The object at `module.name` or `module:name`, from a package `MAHSM_CODE_MODULES` allows.

    Raises:
        ImportError: with a message saying what was not found or not allowed.
    """
    module_name, sep, name = path.partition(":")
    if not sep:
        module_name, _, name = path.rpartition(".")
    if not module_name or not name:
        raise ImportError(f"{path!r} is not 'module.Name' or 'module:Name'")
    try:
        module = import_allowed(module_name)
    except CodeNotAllowed:
        raise
    except ImportError as error:
        raise ImportError(f"cannot import module {module_name!r}: {error}") from None
    try:
        return getattr(module, name)
    except AttributeError:
        raise ImportError(f"module {module_name!r} has no {name!r}") from None


def step_signature(step: SignatureStep) -> type[dspy.Signature] | None:
    """The step's signature (instructions applied); None for a `program` step.

    Raises:
        SignatureError: naming the field at fault.
    """
    if step.signature is not None:
        signature = parse_signature(step.signature)
    elif step.signature_class is not None:
        try:
            found = import_object(step.signature_class)
        except ImportError as error:
            raise SignatureError("signature_class", f"{error}") from None
        if not (isinstance(found, type) and issubclass(found, dspy.Signature)):
            raise SignatureError(
                "signature_class", f"{step.signature_class!r} is not a dspy.Signature subclass"
            )
        signature = found
    else:
        return None
    if step.instructions:
        signature = signature.with_instructions(step.instructions)
    return signature


def step_program_class(step: SignatureStep) -> type[dspy.Module]:
    """The `dspy.Module` subclass a `program` step names.

    Raises:
        SignatureError: naming `program`.
    """
    assert step.program is not None
    try:
        found = import_object(step.program)
    except ImportError as error:
        raise SignatureError(
            "program", f"{error}; the worker must be able to import it (install the package)"
        ) from None
    if not (isinstance(found, type) and issubclass(found, dspy.Module)):
        raise SignatureError("program", f"{step.program!r} is not a dspy.Module subclass")
    return found


def input_templates(step: SignatureStep, signature: type[dspy.Signature] | None) -> dict[str, Any]:
    """Each input field's template: `step.inputs`, or `{field}` for every input field."""
    if step.inputs is not None or signature is None:
        return dict(step.inputs or {})
    return {name: "{" + name + "}" for name in signature.input_fields}


def signature_problems(step: SignatureStep) -> list[Problem]:
    """Everything wrong with a `signature` step that can be seen before it runs."""
    given = [f for f in ("signature", "signature_class", "program") if getattr(step, f)]
    if len(given) != 1:
        return [
            (
                "signature",
                "give exactly one of signature (e.g. 'question: str -> answer: str'),"
                f" signature_class or program; got {', '.join(given) or 'none'}",
            )
        ]
    try:
        signature = step_signature(step)
        if signature is None:
            step_program_class(step)
            return []
    except SignatureError as error:
        return [(error.field, error.message)]
    problems: list[Problem] = []
    if step.module != "react" and step.tools:
        problems.append(("tools", f"only module 'react' uses tools; this step is {step.module}"))
    if step.module == "react" and not step.tools:
        problems.append(("tools", "module 'react' needs at least one tool name"))
    if step.inputs is not None:
        for name in step.inputs:
            if name not in signature.input_fields:
                problems.append(
                    (
                        f"inputs.{name}",
                        f"'{name}' is not an input field of the signature; input fields:"
                        f" {', '.join(signature.input_fields) or 'none'}",
                    )
                )
        for name, field in signature.input_fields.items():
            if name not in step.inputs and not _optional(field.annotation):
                problems.append((f"inputs.{name}", "missing; give a template for this input"))
    return problems


def type_name(annotation: Any) -> str:
    """A type as written in a signature: `int`, `list[str]`, `Literal['a', 'b']`."""
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return repr(annotation).replace("typing.", "")


def plain_value(value: Any) -> Any:
    """An output field's value as JSON-able data (pydantic models dumped)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [plain_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): plain_value(item) for key, item in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _optional(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    return origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(annotation)
