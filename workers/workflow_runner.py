"""The workers' workflow runner: workflows run unsandboxed, DSPy loaded before any task runs.

Temporal's sandbox re-imports a workflow's module for every workflow run and wraps every
activation in its import hooks; it checks only code imported inside it. MAHSM's workflow code
lives in modules imported with `workflow.unsafe.imports_passed_through()` (the engine, the
contracts, DSPy), which the sandbox never checked, so it cost ~20 % of the worker's CPU per task
and protected one module. Determinism is kept by the rules in docs/architecture.md and checked
by replaying recorded histories (tests/replay, which replay in the sandbox).

`signature` steps run DSPy inside the task workflow (`mahsm.workflows.dspy_steps`); DSPy
imports some modules lazily, from inside functions, so a warm-up at start imports them once
and no workflow activation waits on an import.
"""

from __future__ import annotations

import asyncio

from temporalio.worker import UnsandboxedWorkflowRunner, WorkflowRunner


def workflow_runner() -> WorkflowRunner:
    """The runner of every MAHSM workflow worker (see the module docstring)."""
    warm_up()
    return UnsandboxedWorkflowRunner()


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
