"""AgentWorkflow on its own: the loop carries on across continue-as-new."""

from __future__ import annotations

import uuid

from temporalio.api.enums.v1 import EventType

from mahsm.contracts.engine import AgentInput, AgentResult
from mahsm.contracts.task import Capability, Subtask
from mahsm.queues import pool_queue
from mahsm.workflows.agent_workflow import AgentWorkflow

COUNTING = {
    "rules": [
        {
            "purpose": "agent_step",
            "step": step,
            "respond": {
                "tool_calls": [{"name": "calculator", "arguments": {"expression": f"{step}+1"}}]
            },
        }
        for step in range(4)
    ]
    + [{"purpose": "agent_step", "respond": {"content": "last result {last_tool_result}"}}]
}


async def test_long_loop_continues_as_new_and_keeps_its_transcript(engine_factory) -> None:
    async with engine_factory(COUNTING) as engine:
        workflow_id = f"agent-{uuid.uuid4()}"
        handle = await engine.client.start_workflow(
            AgentWorkflow.run,
            AgentInput(
                task_id="task-direct",
                task_description="Count with the calculator",
                subtask=Subtask(
                    id="count",
                    description="Count to four",
                    required_capabilities=[Capability.DATA_ANALYSIS],
                ),
                model="scripted/test",
                max_iterations=8,
                llm_timeout_s=30,
                tool_timeout_s=10,
                history_events_limit=20,
            ),
            id=workflow_id,
            task_queue=pool_queue(engine.settings.queue_prefix, list(Capability)),
            result_type=AgentResult,
        )
        result = await handle.result()
        first_run = engine.client.get_workflow_handle(
            workflow_id, run_id=handle.first_execution_run_id
        )
        events = [e async for e in first_run.fetch_history_events()]

    assert result.answer == "last result 4"
    assert result.iterations == 5
    assert events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    tool_messages = [m for m in result.transcript if m.role == "tool"]
    assert [m.content for m in tool_messages] == ["1", "2", "3", "4"]
    assert result.usage.input_tokens > 0
