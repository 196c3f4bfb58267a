"""An agent on a real Temporal worker calls MCP tools (stdio and HTTP) through the scripted
provider, with a dead server configured next to them."""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

import asyncpg
from temporalio.client import Client
from temporalio.service import RPCError

from mahsm.activities.tools import default_registry
from mahsm.activities.tools.mcp_tools.worker import start_mcp_tools
from mahsm.contracts.task import TaskRequest, TaskStatus
from mahsm.settings import Settings
from tests.activities.tools.mcp_servers.running import DEMO_SERVER, free_port, http_demo_server
from tests.engine_harness import plan_rule, running_engine

TOKEN_VAR = "MAHSM_TEST_MCP_ENGINE_BEARER"  # not a name redaction knows: the config registers it


async def histories(client: Client, task_id: str) -> bytes:
    """The raw events of the task's workflow and of its agent's child workflow, if any."""
    found = b""
    for workflow_id in (task_id, f"{task_id}.sum"):
        try:
            async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
                found += event.SerializeToString()
        except RPCError:
            pass  # the agent ran inline
    return found


async def test_an_agent_gets_mcp_results_on_a_real_worker(
    temporal_client: Client, db_pool: asyncpg.Pool, data_dir: Path
) -> None:
    token = f"mcp-secret-{uuid.uuid4().hex}"
    os.environ[TOKEN_VAR] = token
    port = free_port()
    servers = data_dir / "mcp.json"
    servers.write_text(
        json.dumps(
            {
                "servers": [
                    {
                        "name": "demo",
                        "command": sys.executable,
                        "args": [str(DEMO_SERVER), "stdio"],
                    },
                    {
                        "name": "web",
                        "url": f"http://127.0.0.1:{port}/mcp",
                        "headers": {"Authorization": f"Bearer ${{{TOKEN_VAR}}}"},
                    },
                    {"name": "gone", "command": sys.executable, "args": ["-c", "exit(1)"]},
                ]
            }
        )
    )
    settings = Settings(
        _env_file=None, data_dir=data_dir, mcp_servers=servers, mcp_connect_timeout_s=90
    )
    scenario = {
        "rules": [
            plan_rule(
                "mcp",
                [
                    {
                        "id": "sum",
                        "description": "Add with the MCP tools",
                        "required_capabilities": ["data_analysis"],
                    }
                ],
            ),
            {
                "purpose": "agent_step",
                "after_tool": False,
                "respond": {
                    "tool_calls": [
                        {"name": "demo__add", "arguments": {"a": 2, "b": 3}},
                        {"name": "web__leak_token", "arguments": {}},
                        {"name": "gone__anything", "arguments": {}},
                    ]
                },
            },
            {"purpose": "agent_step", "after_tool": True, "respond": {"content": "{tool_results}"}},
        ]
    }
    try:
        async with http_demo_server(port, token):
            toolset = await start_mcp_tools(settings)
            assert toolset is not None and set(toolset.unavailable) == {"gone"}
            async with toolset:
                catalogue = toolset.add_to(default_registry().copy())
                async with running_engine(
                    client=temporal_client,
                    pool=db_pool,
                    data_dir=data_dir,
                    scenario=scenario,
                    tools=catalogue,
                ) as engine:
                    handle = await engine.start(TaskRequest(description="Sum via mcp"))
                    state = await handle.result()
                    history = await histories(temporal_client, handle.id)
    finally:
        del os.environ[TOKEN_VAR]

    assert state.status == TaskStatus.COMPLETED
    output = state.subtask("sum").result.output or ""
    assert output.splitlines()[:2] == ["5", "token=[REDACTED]"]
    assert "Tool 'gone__anything' is unavailable: MCP server 'gone'" in output
    assert b"demo__add" in history and b"token=[REDACTED]" in history  # the calls are there...
    assert token.encode() not in history  # ...the header's secret is not
    rows = await db_pool.fetch(
        "SELECT data::text AS p FROM task_events WHERE task_id = $1", handle.id
    )
    assert rows and all(token not in row["p"] for row in rows)
