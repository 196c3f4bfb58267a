from __future__ import annotations

import pytest

from mahsm.activities.tools import default_registry
from mahsm.activities.tools.calculator import CalculatorError, calculator, expand_factorials


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("factorial(10)", "3628800"),
        ("10!", "3628800"),
        ("(2 + 1)!!", "720"),
        ("3! + 2", "8"),
        ("sqrt(16)", "4.0"),
        ("2 ** 10", "1024"),
        ("2 ** 200", str(2**200)),
        ("2 ** -1", "0.5"),
        ("-3 ** 2", "-9"),
        ("(1 + 2) * 3 - 4 / 8", "8.5"),
        ("7 // 2 + 7 % 2", "4"),
        ("abs(-3) + round(2.567, 2) + min(4, 5) + max(1, 2)", "11.57"),
        ("log(e) + exp(0) + sin(0) + cos(0)", "3.0"),
        ("round(pi, 5)", "3.14159"),
        ("factorial(30)", "265252859812191058636308480000000"),
    ],
)
def test_computes_arithmetic(expression: str, expected: str) -> None:
    assert calculator(expression) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os')", "unknown function '__import__'"),
        ("__import__('os').system('true')", "attribute access is not allowed"),
        ("().__class__.__bases__", "attribute access is not allowed"),
        ("(1).real", "attribute access is not allowed"),
        ("os", "unknown name 'os'"),
        ("open('/etc/passwd')", "unknown function 'open'"),
        ("'a' * 10", "only int and float numbers"),
        ("True + 1", "only int and float numbers"),
        ("[1, 2]", "'List' is not allowed"),
        ("lambda: 1", "'Lambda' is not allowed"),
        ("1 if 1 else 2", "'IfExp' is not allowed"),
        ("2 ^ 8", "write 2**10"),
        ("10 ** 10 ** 10", "result too large"),
        ("9 ** 9 ** 9", "result too large"),
        ("2 ** 100000", "result too large"),
        ("10 ** 3000 * 10 ** 3000", "result too large"),
        ("1001!", "factorial is limited to 0..1000"),
        ("factorial(-1)", "factorial is limited"),
        ("factorial(2.5)", "whole number"),
        ("round(5, -10 ** 9)", "round's digits are limited"),
        ("exp(100000)", "cannot compute"),
        ("1e308 * 10", "not a finite number"),
        ("1 / 0", "division by zero"),
        ("sqrt(-1)", "math domain error"),
        ("(-8) ** 0.5", "not a real number"),
        ("sqrt(1, 2)", "cannot compute"),
        ("1 +", "not a valid expression"),
        ("!3", "needs a number before it"),
        ("(" * 300 + "1" + ")" * 300, "not a valid expression"),
        ("1" * 2000, "longer than 1000"),
    ],
)
def test_refuses_unsafe_or_unbounded_expressions(expression: str, message: str) -> None:
    with pytest.raises(CalculatorError) as caught:
        calculator(expression)
    assert message in str(caught.value)


def test_factorial_postfix_is_rewritten_into_calls() -> None:
    assert expand_factorials("10!") == "factorial(10)"
    assert expand_factorials("sqrt(16)! + 2!") == "factorial(sqrt(16)) + factorial(2)"
    assert expand_factorials("(1+2)!!") == "factorial(factorial((1+2)))"
    assert expand_factorials("3 != 4") == "3 != 4"  # not a factorial


async def test_calculator_is_offered_to_every_capability_and_runs_in_the_registry() -> None:
    item = default_registry().get("calculator")
    assert item is not None and item.universal and not item.takes_context
    assert item.spec.parameters["required"] == ["expression"]
    assert await item.call(None, item.parse_arguments('{"expression": "10!"}')) == "3628800"
