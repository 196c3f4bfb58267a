"""Contracts of the `middleware_hook` activity: the run and step hooks of middleware.

The LLM-call hooks (`before_llm_call`, `after_llm_call`) run inside `llm_complete` and need no
contract of their own; the run and step hooks run in `middleware_hook`, scheduled by the
workflow (`mahsm.workflows.middleware_hooks.run_hook`) only when some chosen middleware
defines one.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field

from mahsm.contracts.task import MIDDLEWARE_NAME_PATTERN


class MiddlewareHook(StrEnum):
    """The hooks that run outside an LLM call; the value is the method's name."""

    ON_RUN_START = "on_run_start"
    ON_RUN_END = "on_run_end"
    ON_STEP_ERROR = "on_step_error"


class RunInfo(BaseModel):
    """A run (a task or a pipeline run) as `on_run_start` and `on_run_end` see it."""

    task_id: str
    user_id: str | None = None
    pipeline: str | None = Field(default=None, description="the pipeline's name, if any")
    status: str | None = Field(
        default=None, description="at `on_run_end`: the final status (completed, failed, ...)"
    )
    error: str | None = Field(default=None, description="at `on_run_end`: why it failed")


class StepInfo(BaseModel):
    """A step (a subtask, or a pipeline step) as `on_step_error` sees it."""

    task_id: str
    step_id: str
    kind: str = Field(default="agent", description="agent, llm, tool, transform, parallel")
    model: str | None = None


class StepError(BaseModel):
    """Why a step failed: the error type and its (already redacted) message."""

    type: str | None = None
    message: str


class MiddlewareHookRequest(BaseModel):
    """Input of `middleware_hook`: one hook to run on each named middleware, in order."""

    hook: MiddlewareHook
    middleware: list[Annotated[str, Field(pattern=MIDDLEWARE_NAME_PATTERN)]] = Field(
        description="the effective list (chosen or the worker default), names with modes",
        max_length=16,
    )
    run: RunInfo
    step: StepInfo | None = Field(default=None, description="set for `on_step_error`")
    error: StepError | None = Field(default=None, description="set for `on_step_error`")


class MiddlewareHookResult(BaseModel):
    """Result of `middleware_hook`: which middleware ran the hook and which failed (isolated)."""

    ran: list[str] = Field(default_factory=list)
    failed: list[str] = Field(
        default_factory=list, description="non-critical middleware whose hook raised (logged)"
    )
