"""Which MCP servers a worker uses: `McpServerConfig` and the file `MAHSM_MCP_SERVERS` names.

The file (YAML or JSON) holds `servers:`, a list of servers, each either a command the
worker starts (stdio) or a URL (streamable HTTP). Values in `args`, `env`, `url` and
`headers` may reference environment variables as `${NAME}`, so that secrets stay out of the
file; they are substituted when the worker connects, and the substituted values are redacted
from everything MAHSM logs or records.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mahsm.activities.tools.definition import as_capabilities
from mahsm.redaction import register_secret

SERVER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class McpConfigError(ValueError):
    """The MCP servers file is missing, malformed or names a field wrongly."""


class McpServerConfig(BaseModel):
    """One MCP server: a command to start (stdio) or a URL (streamable HTTP)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        pattern=SERVER_NAME_PATTERN,
        description="prefix of its tools' names (`<name>__<tool>`): letters, digits, '-', '_'"
        " (not '__'), at most 32 characters",
    )
    command: str | None = Field(default=None, description="stdio: the executable to start")
    args: list[str] = Field(default_factory=list, description="stdio: its arguments")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="stdio: extra environment variables (the worker's own are not passed on,"
        " except PATH, HOME and the like)",
    )
    cwd: Path | None = Field(default=None, description="stdio: its working directory")
    url: str | None = Field(default=None, description="streamable HTTP: the endpoint URL")
    headers: dict[str, str] = Field(
        default_factory=dict, description="streamable HTTP: headers sent with every request"
    )
    capabilities: list[str] | None = Field(
        default=None,
        description="the capabilities whose subtasks may use its tools; unset: every subtask"
        " this worker's pool serves",
    )
    tools: list[str] | None = Field(
        default=None, description="the server's tools to offer, by their own names; unset: all"
    )
    side_effects: bool | None = Field(
        default=None,
        description="override the server's hints: true = every tool changes the world, false ="
        " none does; unset: a tool changes the world unless annotated readOnlyHint",
    )

    @field_validator("name")
    @classmethod
    def _no_separator(cls, value: str) -> str:
        if "__" in value:
            raise ValueError("must not contain '__' (it separates server and tool names)")
        return value

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://", "${")):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @field_validator("capabilities")
    @classmethod
    def _check_capabilities(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            as_capabilities(value)  # unknown names fail here, with the known ones listed
        return value

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError(f"server '{self.name}': give either `command` (stdio) or `url` (HTTP)")
        if self.url is not None and (self.args or self.env or self.cwd is not None):
            raise ValueError(
                f"server '{self.name}': args, env and cwd go with `command`, not `url`"
            )
        if self.command is not None and self.headers:
            raise ValueError(f"server '{self.name}': headers go with `url`, not `command`")
        return self

    @property
    def transport(self) -> str:
        """`stdio` or `http`."""
        return "stdio" if self.command is not None else "http"

    def where(self) -> str:
        """The command or URL, as written (references unresolved): safe to log."""
        return self.url if self.url is not None else " ".join([self.command or "", *self.args])


class McpServersFile(BaseModel):
    """The file `MAHSM_MCP_SERVERS` names."""

    model_config = ConfigDict(extra="forbid")

    servers: list[McpServerConfig] = Field(default_factory=list)

    @field_validator("servers")
    @classmethod
    def _unique_names(cls, value: list[McpServerConfig]) -> list[McpServerConfig]:
        names = [server.name for server in value]
        taken = sorted({name for name in names if names.count(name) > 1})
        if taken:
            raise ValueError(f"server names must be unique; repeated: {', '.join(taken)}")
        return value


def load_mcp_config(path: Path) -> list[McpServerConfig]:
    """Read the MCP servers file (YAML, or JSON which YAML reads too).

    Raises:
        McpConfigError: The file is missing or malformed; the message names the file, the
            field and the fix.
    """
    try:
        data: Any = yaml.safe_load(path.read_text())
    except OSError as error:
        raise McpConfigError(f"MAHSM_MCP_SERVERS: cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise McpConfigError(f"MAHSM_MCP_SERVERS: {path} is not valid YAML/JSON: {error}") from None
    try:
        return McpServersFile.model_validate(data or {}).servers
    except ValidationError as error:
        problems = [
            f"  {'.'.join(str(part) for part in item['loc']) or 'file'}: {item['msg']}"
            for item in error.errors(include_url=False)
        ]
        raise McpConfigError(
            f"MAHSM_MCP_SERVERS: {path} is invalid:\n"
            + "\n".join(problems)
            + "\nFix: see the MCP section of docs/tools.md"
        ) from None


def resolve(value: str, *, field: str, environ: Mapping[str, str] | None = None) -> str:
    """`value` with each `${NAME}` replaced by that environment variable.

    Every substituted value is registered as a secret, so it is redacted wherever MAHSM
    logs or records text.

    Raises:
        McpConfigError: A referenced variable is not set.
    """
    source = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in source:
            raise McpConfigError(f"environment variable {name} (referenced by {field}) is not set")
        register_secret(source[name])
        return source[name]

    return _REFERENCE.sub(substitute, value)


def resolve_all(values: Mapping[str, str], *, field: str) -> dict[str, str]:
    """`resolve` over the values of a mapping (env, headers)."""
    return {key: resolve(value, field=f"{field}.{key}") for key, value in values.items()}
