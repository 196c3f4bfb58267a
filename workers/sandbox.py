"""The workflow sandbox of the task worker: DSPy passes through, loaded before any task runs.

`signature` steps run DSPy inside the task workflow (`mahsm.workflows.dspy_steps`). DSPy
imports some of its modules lazily, from inside functions; in the sandbox each of those would
be re-imported per workflow, and some read the file system at import time (a restricted call).
Passing the `dspy` package through gives every workflow the worker's one copy, and a warm-up
at start imports the lazily loaded modules once, so no workflow activation waits on an import.
"""

from __future__ import annotations

import asyncio

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

PASSTHROUGH = ("dspy",)


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox for workflows that may run DSPy programs (the task workflow)."""
    warm_up()
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
    )


_warm = False


def warm_up() -> None:
    """Run a tiny program once on a canned LM: what DSPy imports lazily is imported now."""
    global _warm
    if _warm:
        return
    import dspy

    from mahsm.activities.dspy_lm import MahsmLM
    from mahsm.contracts.llm import LLMRequest, LLMResponse

    async def canned(request: LLMRequest) -> LLMResponse:
        fields = "[[ ## reasoning ## ]]\nr\n\n[[ ## b ## ]]\n1\n\n[[ ## completed ## ]]"
        return LLMResponse(content=fields, model="x/y")

    async def run() -> None:
        lm = MahsmLM("scripted/warm-up", call=canned)
        with dspy.context(lm=lm, adapter=dspy.ChatAdapter(), trace=None):
            prediction = await dspy.ChainOfThought("a -> b: int").acall(a="x")
        assert prediction.b == 1, prediction  # the warm-up ran the whole program

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(run())
    else:  # called from a running loop (tests build workers there): a loop of its own
        import threading

        thread = threading.Thread(target=asyncio.run, args=(run(),))
        thread.start()
        thread.join()
    _warm = True
