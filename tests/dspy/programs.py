"""DSPy signatures and programs the tests name by import path."""

from __future__ import annotations

from typing import Literal

import dspy
from pydantic import BaseModel


class Ticket(BaseModel):
    """A triaged ticket."""

    team: Literal["billing", "tech"]
    priority: int


class Triage(dspy.Signature):
    """Triage a support ticket."""

    text: str = dspy.InputField()
    ticket: Ticket = dspy.OutputField()


class DraftThenCheck(dspy.Module):
    """Two predictors in a row: each LM call is its own activity."""

    def __init__(self) -> None:
        super().__init__()
        self.draft = dspy.Predict("topic: str -> draft: str")
        self.check = dspy.Predict("draft: str -> ok: bool")

    async def aforward(self, topic: str) -> dspy.Prediction:
        draft = await self.draft.acall(topic=topic)
        check = await self.check.acall(draft=draft.draft)
        return dspy.Prediction(draft=draft.draft, ok=check.ok)


class Answerer(dspy.Module):
    """A one-predictor program for optimization runs (sync path for DSPy's optimizers)."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = dspy.Predict("question -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        return self.answer(question=question)

    async def aforward(self, question: str) -> dspy.Prediction:
        return await self.answer.acall(question=question)
