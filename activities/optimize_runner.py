"""The optimization itself: synchronous DSPy code (optimizer, evaluation) run in a thread.

Its LM is a `MahsmLM` whose calls are made by `call` (the activity's memoised provider call),
bridged from the optimizer's thread to the activity's event loop. Progress is reported after
every metric evaluation through `report`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import dspy

from mahsm.activities.dspy_lm import MahsmLM
from mahsm.contracts.llm import LLMRequest, LLMResponse
from mahsm.dspy.signatures import import_object
from mahsm.optimize.metrics import resolve_metric
from mahsm.optimize.models import OptimizeProgress, OptimizeRequest


def examples(rows: list[dict[str, Any]], inputs: list[str] | None) -> list[dspy.Example]:
    """DSPy examples; input fields: `inputs`, or every key but the last."""
    result = []
    for row in rows:
        keys = inputs if inputs is not None else list(row)[:-1]
        result.append(dspy.Example(**row).with_inputs(*keys))
    return result


def optimize(
    request: OptimizeRequest,
    call: Callable[[LLMRequest], Coroutine[Any, Any, LLMResponse]],
    loop: asyncio.AbstractEventLoop,
    report: Callable[[OptimizeProgress], None],
) -> tuple[Any, float | None, float | None]:
    """Run the optimizer: (compiled program, dev-set score, baseline dev-set score)."""
    program_class = import_object(request.program)
    metric = resolve_metric(request.metric)
    train = examples(request.trainset, request.inputs)
    dev = examples(request.devset, request.inputs)
    progress = OptimizeProgress(planned=len(train) + 2 * len(dev), stage="baseline")

    def bridged(lm_request: LLMRequest) -> Any:
        # The optimizer's thread runs its own loop per call; the call itself runs on the
        # activity's loop (where its database pool lives).
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call(lm_request), loop))

    lm = MahsmLM(request.model, call=bridged, subtask_id="optimize")

    def counted(example: Any, prediction: Any, trace: Any = None) -> float | bool:
        progress.done += 1
        report(progress.model_copy())
        return metric(example, prediction, trace)

    def evaluate(program: Any) -> float | None:
        if not dev:
            return None
        result = dspy.Evaluate(devset=dev, metric=counted, num_threads=1)(program)
        return float(result.score) / 100.0

    with dspy.context(lm=lm, adapter=dspy.ChatAdapter(use_json_adapter_fallback=False)):
        baseline = evaluate(program_class())
        progress.baseline_score = progress.best_score = baseline
        progress.stage = "bootstrapping"
        report(progress.model_copy())
        optimizer = dspy.BootstrapFewShot(
            metric=counted,
            max_bootstrapped_demos=request.max_bootstrapped_demos,
            max_labeled_demos=request.max_labeled_demos,
        )
        compiled = optimizer.compile(program_class(), trainset=train)
        progress.stage = "evaluating"
        score = evaluate(compiled)
    if score is not None and (progress.best_score is None or score > progress.best_score):
        progress.best_score = score
    progress.stage = "saving"
    progress.planned = progress.done  # the plan was an upper bound (bootstrapping stops early)
    report(progress.model_copy())
    return compiled, score, baseline
