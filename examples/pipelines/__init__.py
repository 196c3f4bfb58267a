"""Transforms used by the example pipelines (`function: examples.pipelines.<name>`).

A transform takes one dict: its step's rendered `args`, or (without `args`) every input and
every earlier step's output by name. It returns a JSON value. Workers find these functions
by import path when they run from the repository's root (`mahsm up` in a checkout).
"""

from __future__ import annotations

from typing import Any


def shape_reply(values: dict[str, Any]) -> dict[str, Any]:
    """The reply to send: the draft with a greeting, and what the checks found.

    Args:
        values: The ticket's inputs and earlier outputs: `customer`, `draft`, `classify`
            (`category`, `urgent`) and `checks` (`tone`, `total`).

    Returns:
        `reply` (text), `category`, `urgent` and `priority` (1 urgent, 3 otherwise).
    """
    classify = values.get("classify") or {}
    checks = values.get("checks") or {}
    urgent = bool(classify.get("urgent"))
    draft = str(values.get("draft") or "").strip()
    reply = f"Dear {values.get('customer', 'customer')},\n\n{draft}"
    if str(checks.get("tone", "")).lower().startswith("harsh"):
        reply += "\n\n(We are sorry for any inconvenience.)"
    return {
        "reply": reply,
        "category": classify.get("category", "other"),
        "urgent": urgent,
        "priority": 1 if urgent else 3,
    }
