"""Metrics by name: `exact_match`, `contains`, `f1`, or `module:function` (DSPy's signature)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from mahsm.dspy.signatures import import_object

Metric = Callable[..., float | bool]


def _pairs(example: Any, prediction: Any) -> list[tuple[str, str]]:
    labels = example.labels()
    return [(str(labels[k]), str(getattr(prediction, k, "") or "")) for k in labels.keys()]


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def exact_match(example: Any, prediction: Any, trace: Any = None) -> float:
    """1.0 when every label equals the prediction's field (case and punctuation ignored)."""
    pairs = _pairs(example, prediction)
    return float(all(_norm(a) == _norm(b) for a, b in pairs))


def contains(example: Any, prediction: Any, trace: Any = None) -> float:
    """1.0 when every label appears in the prediction's field."""
    pairs = _pairs(example, prediction)
    return float(all(_norm(a) in _norm(b) for a, b in pairs))


def f1(example: Any, prediction: Any, trace: Any = None) -> float:
    """Token F1 between labels and predictions, averaged over the label fields."""
    scores = []
    for gold, guess in _pairs(example, prediction):
        g, p = _norm(gold).split(), _norm(guess).split()
        common = sum((Counter(g) & Counter(p)).values())
        if not g or not p or not common:
            scores.append(float(g == p))
            continue
        precision, recall = common / len(p), common / len(g)
        scores.append(2 * precision * recall / (precision + recall))
    return sum(scores) / len(scores) if scores else 0.0


BUILTIN: dict[str, Metric] = {"exact_match": exact_match, "contains": contains, "f1": f1}


def resolve_metric(name: str) -> Metric:
    """The metric called `name`.

    Raises:
        ValueError: naming the built-ins when `name` is neither one nor importable.
    """
    if name in BUILTIN:
        return BUILTIN[name]
    try:
        found = import_object(name)
    except ImportError as error:
        raise ValueError(
            f"metric {name!r}: {error}; use {', '.join(BUILTIN)} or 'module:function'"
        ) from None
    if not callable(found):
        raise ValueError(f"metric {name!r} is not a function")
    metric: Metric = found
    return metric
