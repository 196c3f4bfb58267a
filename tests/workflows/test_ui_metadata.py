"""What a person sees in the Temporal Web UI: searchable status and user, readable summaries."""

from __future__ import annotations

import asyncio

import pytest

from mahsm.contracts.pipeline import Pipeline
from mahsm.contracts.task import TaskOptions, TaskRequest, TaskStatus
from mahsm.tasks import start_task

SCENARIO = {
    "rules": [
        {
            "purpose": "plan",
            "respond": {
                "plan": {
                    "subtasks": [
                        {
                            "id": "sum",
                            "description": "Add two and two",
                            "required_capabilities": ["data_analysis"],
                        }
                    ]
                }
            },
        },
        {
            "purpose": "agent_step",
            "after_tool": False,
            "respond": {"tool_calls": [{"name": "calculator", "arguments": {"expression": "2+2"}}]},
        },
        {"purpose": "agent_step", "after_tool": True, "respond": {"content": "{last_tool_result}"}},
        {"purpose": "aggregate", "respond": {"content": "four"}},
    ]
}


@pytest.mark.parametrize("inline_history_events", [10_000, 0], ids=["inline", "child"])
async def test_tasks_are_searchable_by_status_and_user_and_carry_summaries(
    engine_factory, inline_history_events: int
) -> None:
    async with engine_factory(SCENARIO, inline_history_events=inline_history_events) as engine:
        handle = await start_task(
            engine.client,
            TaskRequest(description="Add two and two for the UI", user_id="ui-alice"),
            queue_prefix=engine.settings.queue_prefix,
        )
        assert (await handle.result()).status == TaskStatus.COMPLETED
        query = (
            f"WorkflowId = '{handle.id}'"
            " AND MahsmTaskStatus = 'completed' AND MahsmUserId = 'ui-alice'"
        )
        found: list[str] = []
        for _ in range(50):  # visibility is eventually consistent
            found = [w.id async for w in engine.client.list_workflows(query)]
            if found:
                break
            await asyncio.sleep(0.1)
        description = await handle.describe()
        agent_history = handle
        if inline_history_events == 0:  # the agent ran in a child workflow
            agent_history = engine.client.get_workflow_handle(f"{handle.id}.sum")
            child = await agent_history.describe()
            assert await child.static_summary() == "sum: Add two and two"
        activity_summaries = [
            event.user_metadata.summary.data.decode()
            async for event in agent_history.fetch_history_events()
            if event.HasField("activity_task_scheduled_event_attributes")
        ]

    assert found == [handle.id]
    assert await description.static_summary() == "Add two and two for the UI"
    assert "ui-alice" in (await description.static_details() or "")
    assert any("tool calculator" in s for s in activity_summaries)
    assert any("LLM step 1: sum" in s for s in activity_summaries)


async def test_pipeline_runs_name_their_pipeline_and_steps_in_the_ui(engine_factory) -> None:
    pipeline = Pipeline.model_validate(
        {
            "name": "ui-pipeline",
            "version": "3",
            "inputs": {"topic": "str"},
            "steps": [{"name": "write", "kind": "llm", "prompt": "Write about {topic}"}],
        }
    )
    request = TaskRequest(
        description="Run pipeline ui-pipeline",
        pipeline=pipeline,
        inputs={"topic": "owls"},
        options=TaskOptions(model=["scripted/test", "scripted/other"]),
    )
    async with engine_factory(SCENARIO) as engine:
        handle = await start_task(engine.client, request, queue_prefix=engine.settings.queue_prefix)
        assert (await handle.result()).status == TaskStatus.COMPLETED
        description = await handle.describe()
        summaries = [
            event.user_metadata.summary.data.decode()
            async for event in handle.fetch_history_events()
            if event.HasField("activity_task_scheduled_event_attributes")
        ]

    details = await description.static_details() or ""
    assert "pipeline: ui-pipeline@3, 1 steps, inputs: topic" in details
    assert "scripted/test then scripted/other (fallback chain)" in details
    assert any("step write: llm" in s for s in summaries)
