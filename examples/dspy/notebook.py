"""A DSPy program written as in a notebook, run on MAHSM's providers with `MahsmLM`.

No Temporal here: `MahsmLM` calls the provider directly. On the scripted model:

    MAHSM_SCRIPTED_SCENARIO=examples/dspy/scenario.yaml python -m examples.dspy.notebook

With MAHSM_DATABASE_URL set it also saves the program as a prompt artifact and loads it back.
"""

from __future__ import annotations

import asyncio
import os

import dspy

from mahsm import prompt
from mahsm.activities.dspy_lm import MahsmLM
from mahsm.activities.tools.registry import default_registry


def classify(ticket: str, model: str = "scripted/example") -> dspy.Prediction:
    """Classify a ticket with a typed signature (DSPy's sync entry point works too)."""
    lm = MahsmLM(model, subtask_id="classify")  # scripted rules may match the subtask
    program = dspy.Predict(
        dspy.Signature(
            "ticket: str -> category: Literal['billing', 'tech', 'sales'], urgent: bool,"
            " confidence: float"
        ).with_instructions("Classify the support ticket.")
    )
    with dspy.context(lm=lm):
        return program(ticket=ticket)


async def save_and_load() -> None:
    """Save the classifier as an artifact, then load it back with its tools checked."""
    program = dspy.Predict("ticket -> category")
    calculator = default_registry().get("calculator")
    ref = await prompt.save(program, "ticket-classifier", tools=[calculator])
    loaded = await prompt.load(ref.name, ref.version, tools=[calculator])
    print(f"saved {ref}; loaded {type(loaded).__name__}")  # noqa: T201


if __name__ == "__main__":
    result = classify("I was charged twice for my subscription")
    print(result.category, result.urgent, result.confidence)  # noqa: T201
    if os.environ.get("MAHSM_DATABASE_URL"):
        asyncio.run(save_and_load())
