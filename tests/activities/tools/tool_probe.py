"""A tiny workflow for the tool tests: offer tools like an agent would, then run calls."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from mahsm.activities.tools.activity import ToolActivities
    from mahsm.activities.tools.registry import specs_for
    from mahsm.contracts.llm import ToolCall
    from mahsm.contracts.task import Capability
    from mahsm.contracts.tools import ToolInvocation, ToolOutcome


class ProbeInput(BaseModel):
    task_id: str
    capabilities: list[Capability]
    calls: list[ToolCall]
    start_to_close_s: float = 30.0


class ProbeResult(BaseModel):
    offered: list[str] = Field(default_factory=list)
    outcomes: list[ToolOutcome] = Field(default_factory=list)


@workflow.defn(name="ToolProbeWorkflow")
class ToolProbeWorkflow:
    @workflow.run
    async def run(self, request: ProbeInput) -> ProbeResult:
        result = ProbeResult(offered=[spec.name for spec in specs_for(request.capabilities)])
        for call in request.calls:
            outcome = await workflow.execute_activity_method(
                ToolActivities.execute,
                ToolInvocation(
                    task_id=request.task_id,
                    subtask_id="probe",
                    call=call,
                    capabilities=request.capabilities,
                ),
                start_to_close_timeout=timedelta(seconds=request.start_to_close_s),
                retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=50)),
            )
            result.outcomes.append(outcome)
        return result
