"""MCP tools as MAHSM tools: names, schemas, argument checks and results.

A tool `fetch` of server `web` is offered as `web__fetch`, with the server's JSON schema as
its parameters. It changes the world (its results are recorded under the call's idempotency
key, and `options.side_effects=false` leaves it out) unless the server annotates it
`readOnlyHint` or the config overrides `side_effects`.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

import jsonschema  # type: ignore[import-untyped]
from mcp_types import (
    AudioContent,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
    Tool,
)
from pydantic import BaseModel, ConfigDict

from mahsm.activities.tools.definition import (
    EVERY_CAPABILITY,
    TOOL_NAME_PATTERN,
    RegisteredTool,
    ToolArgumentsError,
    ToolContext,
    ToolError,
    as_capabilities,
)
from mahsm.activities.tools.mcp_tools.session import McpServerSession
from mahsm.contracts.llm import ToolSpec

SEPARATOR = "__"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
MAX_ARGUMENT_PROBLEMS = 10


class _AnyArguments(BaseModel):
    model_config = ConfigDict(extra="allow")


async def _call_remote(**_: Any) -> str:
    """Placeholder: an MCP tool is run by `McpTool.call`, never through this."""
    raise ToolError("an MCP tool runs through its server")


def tool_name(server: str, remote: str) -> str | None:
    """The MAHSM name of `remote` on `server`, or None when no valid name fits."""
    name = f"{server}{SEPARATOR}{_UNSAFE.sub('_', remote)}"
    return name if TOOL_NAME_PATTERN.match(name) else None


@dataclass(frozen=True)
class McpTool(RegisteredTool):
    """A tool of an MCP server: arguments checked against its JSON schema, run by the server."""

    session: McpServerSession | None = None
    remote_name: str = ""

    def parse_arguments(self, arguments: str | dict[str, Any]) -> dict[str, Any]:
        """The model's arguments, checked against the server's schema.

        Raises:
            ToolArgumentsError: Not a JSON object, or not matching the schema.
        """
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments.strip() or "{}")
            except json.JSONDecodeError as error:
                raise ToolArgumentsError(
                    f"Invalid arguments for tool '{self.name}': not valid JSON ({error.msg})."
                ) from None
        if not isinstance(arguments, dict):
            raise ToolArgumentsError(
                f"Invalid arguments for tool '{self.name}': expected a JSON object."
            )
        try:
            validator = jsonschema.validators.validator_for(self.spec.parameters)(
                self.spec.parameters
            )
            errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))
        except jsonschema.SchemaError:
            return arguments  # a schema we cannot check with: the server checks
        if errors:
            problems = [
                f"- {'.'.join(str(p) for p in error.path) or 'arguments'}: {error.message}"
                for error in errors[:MAX_ARGUMENT_PROBLEMS]
            ]
            raise ToolArgumentsError(
                f"Invalid arguments for tool '{self.name}':\n" + "\n".join(problems)
            )
        return arguments

    async def call(self, context: ToolContext | None, arguments: dict[str, Any]) -> str:
        """Call the tool on its server; a result flagged `isError` is a `ToolError`."""
        assert self.session is not None
        key = context.idempotency_key if context is not None else ""
        result = await self.session.call_tool(self.remote_name, arguments, idempotency_key=key)
        text = result_text(result)
        if result.is_error:
            raise ToolError(text or "the MCP server reported an error without details")
        return text


def result_text(result: CallToolResult) -> str:
    """The text a call result shows the model: its text blocks, and notes for the others."""
    parts = [_block_text(block) for block in result.content]
    if not parts and result.structured_content is not None:
        return json.dumps(result.structured_content, ensure_ascii=False)
    return "\n".join(parts)


def _block_text(block: object) -> str:
    if isinstance(block, TextContent):
        return block.text
    if isinstance(block, ImageContent | AudioContent):
        kind = "image" if isinstance(block, ImageContent) else "audio"
        return f"[{kind} {block.mime_type}, {len(block.data) * 3 // 4} bytes: not shown]"
    if isinstance(block, ResourceLink):
        return f"[resource link: {block.uri}]"
    if isinstance(block, EmbeddedResource):
        resource = block.resource
        if isinstance(resource, TextResourceContents):
            return resource.text
        return (
            f"[binary resource {resource.uri} ({resource.mime_type or 'unknown type'}): not shown]"
        )
    return f"[{getattr(block, 'type', type(block).__name__)} content: not shown]"


def parameters_of(tool: Tool) -> dict[str, Any]:
    """The tool's input schema as OpenAI function parameters (an object schema)."""
    schema = copy.deepcopy(tool.input_schema)
    schema.pop("$schema", None)
    schema["type"] = "object"
    schema.setdefault("properties", {})
    return schema


def build_mcp_tool(session: McpServerSession, tool: Tool, *, name: str) -> McpTool:
    """The MAHSM tool for `tool` of `session`'s server, offered as `name`."""
    config = session.config
    description = tool.description or tool.title or f"Tool '{tool.name}'"
    read_only = tool.annotations is not None and tool.annotations.read_only_hint is True
    side_effects = config.side_effects if config.side_effects is not None else not read_only
    capabilities = (
        EVERY_CAPABILITY if config.capabilities is None else as_capabilities(config.capabilities)
    )
    return McpTool(
        name=name,
        spec=ToolSpec(
            name=name,
            description=f"{description} (MCP server '{config.name}')",
            parameters=parameters_of(tool),
        ),
        capabilities=capabilities,
        side_effects=side_effects,
        func=_call_remote,
        arguments_model=_AnyArguments,
        takes_context=True,
        session=session,
        remote_name=tool.name,
    )
