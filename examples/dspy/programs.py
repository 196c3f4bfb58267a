"""DSPy code the example pipeline names by import path (`examples.dspy.programs.<Name>`).

The worker must be able to import it: run the worker from the repository root (or install
your own package with such modules).
"""

from __future__ import annotations

from typing import Literal

import dspy
from pydantic import BaseModel


class Routing(BaseModel):
    """Where a ticket goes."""

    team: Literal["billing", "tech", "sales"]
    priority: int


class RouteTicket(dspy.Signature):
    """Route a support ticket to a team, with a priority from 1 (low) to 3 (urgent)."""

    ticket: str = dspy.InputField()
    routing: Routing = dspy.OutputField()


class DraftAndCheck(dspy.Module):
    """A custom module: draft a reply, then check it. Each LM call is its own activity."""

    def __init__(self) -> None:
        super().__init__()
        self.draft = dspy.ChainOfThought("ticket: str, team: str -> reply: str")
        self.check = dspy.Predict("reply: str -> polite: bool")

    async def aforward(self, ticket: str, team: str) -> dspy.Prediction:
        """The async path: the one a durable step runs."""
        draft = await self.draft.acall(ticket=ticket, team=team)
        check = await self.check.acall(reply=draft.reply)
        return dspy.Prediction(reply=draft.reply, polite=check.polite)
