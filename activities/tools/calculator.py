"""The `calculator` tool: safe arithmetic by walking an allow-listed Python AST.

Nothing is ever passed to `eval`/`exec`. Integers are exact and bounded in size, factorial
inputs and `round` digits are bounded, so no expression can hang the worker or eat its memory.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from mahsm.activities.tools.registry import ToolError, tool

Number = int | float

MAX_EXPRESSION_CHARS = 1000
MAX_INT_DIGITS = 4000
MAX_INT_BITS = int(MAX_INT_DIGITS * math.log2(10))
MAX_FACTORIAL = 1000
MAX_ROUND_DIGITS = 100


class CalculatorError(ToolError):
    """The expression is not allowed or cannot be computed."""


def _int_arg(value: Number, what: str) -> int:
    if isinstance(value, float):
        if not value.is_integer():
            raise CalculatorError(f"{what} needs a whole number, got {value!r}")
        return int(value)
    return value


def _factorial(value: Number) -> int:
    n = _int_arg(value, "factorial")
    if not 0 <= n <= MAX_FACTORIAL:
        raise CalculatorError(f"factorial is limited to 0..{MAX_FACTORIAL}, got {n}")
    return math.factorial(n)


def _round(value: Number, digits: Number | None = None) -> Number:
    if digits is None:
        return round(value)
    places = _int_arg(digits, "round's digits")
    if abs(places) > MAX_ROUND_DIGITS:
        raise CalculatorError(f"round's digits are limited to ±{MAX_ROUND_DIGITS}")
    return round(value, places)


def _power(base: Number, exponent: Number) -> Number:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if (abs(base).bit_length() - 1) * exponent > MAX_INT_BITS:
            raise CalculatorError(
                f"result too large: {base}**{exponent} has more than {MAX_INT_DIGITS} digits"
            )
    result: Any = base**exponent
    if isinstance(result, complex):
        raise CalculatorError(f"({base})**({exponent}) is not a real number")
    return result  # type: ignore[no-any-return]


def _multiply(left: Number, right: Number) -> Number:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
            raise CalculatorError(f"result too large: more than {MAX_INT_DIGITS} digits")
    return left * right


FUNCTIONS: dict[str, Callable[..., Number]] = {
    "abs": abs,
    "ceil": math.ceil,
    "cos": math.cos,
    "exp": math.exp,
    "factorial": _factorial,
    "floor": math.floor,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "max": max,
    "min": min,
    "round": _round,
    "sin": math.sin,
    "sqrt": math.sqrt,
    "tan": math.tan,
}
CONSTANTS: dict[str, float] = {"e": math.e, "pi": math.pi, "tau": math.tau}
BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: _multiply,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: _power,
}
UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def _check(value: Number) -> Number:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise CalculatorError(f"result too large: more than {MAX_INT_DIGITS} digits")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculatorError("result is not a finite number")
    return value


def _evaluate(node: ast.AST) -> Number:
    match node:
        case ast.Expression(body=body):
            return _evaluate(body)
        case ast.Constant(value=int() | float() as value) if not isinstance(value, bool):
            return _check(value)
        case ast.Constant(value=value):
            raise CalculatorError(f"only int and float numbers are allowed, got {value!r}")
        case ast.Name(id=name) if name in CONSTANTS:
            return CONSTANTS[name]
        case ast.Name(id=name):
            raise CalculatorError(f"unknown name '{name}'; constants: {', '.join(CONSTANTS)}")
        case ast.BinOp(left=left, op=op, right=right) if type(op) in BINARY:
            return _check(BINARY[type(op)](_evaluate(left), _evaluate(right)))
        case ast.BinOp(op=ast.BitXor()):
            raise CalculatorError("'^' is not a power here: write 2**10")
        case ast.UnaryOp(op=op, operand=operand) if type(op) in UNARY:
            return UNARY[type(op)](_evaluate(operand))
        case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in FUNCTIONS:
            return _check(FUNCTIONS[name](*(_evaluate(arg) for arg in args)))
        case ast.Call(func=ast.Name(id=name), keywords=[]):
            raise CalculatorError(
                f"unknown function '{name}'; functions: {', '.join(sorted(FUNCTIONS))}"
            )
        case ast.Attribute() | ast.Call(func=ast.Attribute()):
            raise CalculatorError("attribute access is not allowed")
    raise CalculatorError(f"'{type(node).__name__}' is not allowed in an arithmetic expression")


def _operand_start(text: str, end: int) -> int:
    """Index where the operand ending just before `end` starts (for postfix `!`)."""
    k = end - 1
    if text[k] == ")":
        depth = 0
        while k >= 0:
            depth += {")": 1, "(": -1}.get(text[k], 0)
            if depth == 0:
                break
            k -= 1
        if k < 0:
            raise CalculatorError("unbalanced parentheses before '!'")
    elif not (text[k].isalnum() or text[k] in "._"):
        raise CalculatorError("'!' must follow a number or a parenthesized expression")
    while k > 0 and (text[k - 1].isalnum() or text[k - 1] in "._"):
        k -= 1
    return k


def expand_factorials(text: str) -> str:
    """Rewrite postfix factorials into calls: `10!` -> `factorial(10)`, `(2+1)!!` nests."""
    while True:
        bang = next(
            (i for i, ch in enumerate(text) if ch == "!" and text[i + 1 : i + 2] != "="), -1
        )
        if bang < 0:
            return text
        end = len(text[:bang].rstrip())
        if end == 0:
            raise CalculatorError("'!' needs a number before it")
        start = _operand_start(text, end)
        text = f"{text[:start]}factorial({text[start:end]}){text[bang + 1 :]}"


def evaluate(expression: str) -> Number:
    """Evaluate an arithmetic expression under the allow-list; raise `CalculatorError`."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expand_factorials(expression.strip()), mode="eval")
        return _evaluate(tree)
    except SyntaxError as error:
        raise CalculatorError(f"not a valid expression: {error.msg}") from None
    except RecursionError:
        raise CalculatorError("expression is nested too deeply") from None
    except (ArithmeticError, ValueError, TypeError) as error:
        raise CalculatorError(f"cannot compute: {error}") from None


def format_number(value: Number) -> str:
    """Integers exactly; floats in their shortest round-tripping form."""
    return str(value) if isinstance(value, int) else repr(value)


@tool(capabilities=None)
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression exactly (integers) or as a float.

    Supports numbers, + - * / // % **, unary minus, parentheses, postfix factorial (`10!`),
    the functions abs, ceil, cos, exp, factorial, floor, log, log10, log2, max, min, round,
    sin, sqrt, tan and the constants pi, e, tau. Write powers as 2**10, not 2^10.

    Args:
        expression: The expression, e.g. "factorial(10) / (2**5 + sqrt(16))".
    """
    return format_number(evaluate(expression))
