"""Input of the one-workflow floor (`bench.one_workflow_floor`), outside the workflow module so
the sandbox passes it through instead of re-creating the models for every workflow run."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from mahsm.contracts.llm import ToolSpec
from mahsm.contracts.task import Subtask


class FloorRequest(BaseModel):
    """One task for `OneWorkflowTask`: the same work a MAHSM `TaskRequest` describes.

    `subtasks` given: no planner call (as a MAHSM request with a plan); otherwise the planner
    is asked, with `plan_schema` as the structured-output schema as MAHSM sends it.
    """

    description: str
    model: str
    subtasks: list[Subtask] | None = None
    tools: list[ToolSpec] = Field(default_factory=list, description="offered to every agent")
    plan_schema: dict[str, Any] | None = None
    max_iterations: int = 8
    llm_timeout_s: float = 120.0
    tool_timeout_s: float = 60.0
