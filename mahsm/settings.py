"""Process configuration, read once from `MAHSM_*` environment variables and `.env`."""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mahsm.contracts.task import MIDDLEWARE_NAME_PATTERN, MODEL_ID_PATTERN, Capability


class SettingsError(RuntimeError):
    """Raised when the configuration cannot be used; the message names the variable and the fix."""


class Settings(BaseSettings):
    """Every knob of a MAHSM process. Each field maps to `MAHSM_<FIELD NAME>`."""

    model_config = SettingsConfigDict(
        env_prefix="MAHSM_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Temporal
    temporal_address: str | None = Field(
        default=None, description="host:port of a Temporal frontend; unset = embedded dev server"
    )
    temporal_namespace: str = "default"
    temporal_tls: bool = False
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_api_key: SecretStr | None = None
    temporal_ui_url: str = Field(
        default="http://127.0.0.1:8233",
        description="Web UI link shown to users; follows temporal_ui_port unless set",
    )
    temporal_port: int = Field(
        default=7233, ge=1, le=65535, description="gRPC port of the embedded dev server"
    )
    temporal_ui_port: int = Field(
        default=8233, ge=1, le=65535, description="Web UI port of the embedded dev server"
    )

    # Postgres
    database_url: SecretStr | None = Field(
        default=None, description="postgresql:// URL; unset = embedded Postgres in data_dir"
    )
    database_pool_max: int = Field(default=10, ge=1, le=200)
    postgres_port: int = Field(
        default=5433,
        ge=1,
        le=65535,
        description="port of the embedded Postgres (5433 so a system Postgres on 5432 can stay)",
    )
    sql_tool_database_url: SecretStr | None = Field(
        default=None,
        description="postgresql:// URL of the database the sql_query tool reads (never MAHSM's);"
        " unset = sql_query is disabled",
    )

    # Local state of the embedded stack, workspaces, call logs
    data_dir: Path = Path(".mahsm")

    # API
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_keys: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="comma-separated key:user pairs, e.g. 'k1:alice,k2:bob'",
    )

    # Workers
    queue_prefix: str = Field(
        default="mahsm", pattern=r"^[A-Za-z0-9_.\-]+$", description="task-queue name prefix"
    )
    worker_capabilities: Annotated[list[Capability], NoDecode] = Field(
        default_factory=lambda: list(Capability)
    )
    worker_max_concurrent_activities: int = Field(default=200, ge=1)
    worker_max_concurrent_workflow_tasks: int = Field(default=100, ge=1)
    ready_file: Path | None = Field(
        default=None,
        description="file a worker creates once it polls its task queues (set by `mahsm up`)",
    )

    # LLM
    default_model: str = Field(default="scripted/demo", pattern=MODEL_ID_PATTERN)
    scripted_scenario: Path | None = None
    prices: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="JSON: {'provider/model': [usd_per_mtok_in, out]}"
    )

    # Timeouts (seconds)
    llm_timeout_s: float = Field(default=120.0, gt=0)
    tool_timeout_s: float = Field(default=60.0, gt=0)
    task_timeout_s: float = Field(default=3600.0, gt=0)
    subtask_timeout_s: float = Field(default=900.0, gt=0)
    capability_wait_s: float = Field(default=120.0, gt=0)

    # Logging
    log_level: str = "INFO"
    log_format: str = Field(default="auto", pattern="^(auto|json|console)$")

    # Large payloads go to the blob table above this size (claim check).
    claim_check_bytes: int = Field(default=128 * 1024, ge=1024, le=1536 * 1024)

    # Engine: an agent runs inside its task's workflow until the task's history reaches
    # either bound, then in a child workflow of its own (docs/architecture.md); 0 runs every
    # agent in a child workflow.
    inline_history_events: int = Field(default=10_000, ge=0, le=40_000)
    inline_history_bytes: int = Field(default=16 * 1024 * 1024, ge=1024 * 1024, le=32 * 1024 * 1024)
    # How long one LLM call may keep being retried (all attempts), seconds.
    llm_retry_s: float = Field(default=600.0, gt=0, le=24 * 3600)
    # Event streams (SSE): open streams one user may hold on one API process.
    sse_max_streams_per_user: int = Field(
        default=20, ge=1, le=10_000, description="open GET /tasks/{id}/events streams per user"
    )
    # Bounds on what one tool call returns and on one stored blob.
    tool_output_max_bytes: int = Field(
        default=1024 * 1024,
        ge=4096,
        description="a tool result is cut at this many bytes, with a note to the model",
    )
    blob_max_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=64 * 1024,
        description="largest blob the claim-check store accepts (a clear error above it)",
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_api_keys(cls, raw: object) -> object:
        if not isinstance(raw, str):
            return raw
        keys: dict[str, str] = {}
        for pair in filter(None, (p.strip() for p in raw.split(","))):
            key, sep, user = pair.partition(":")
            if not sep or not key or not user:
                raise ValueError("each entry must be 'key:user', e.g. 'k1:alice,k2:bob'")
            keys[key] = user
        return keys

    @field_validator("worker_capabilities", mode="before")
    @classmethod
    def _parse_capabilities(cls, raw: object) -> object:
        if isinstance(raw, str):
            return [c.strip() for c in raw.split(",") if c.strip()]
        return raw

    @field_validator("temporal_address")
    @classmethod
    def _check_address(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[^:/\s]+:\d{1,5}", value):
            raise ValueError("expected host:port, e.g. 'localhost:7233'")
        return value

    @field_validator("database_url", "sql_tool_database_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(
            ("postgresql://", "postgres://")
        ):
            raise ValueError("expected a postgresql:// URL")
        return value

    @field_validator("sql_tool_database_url")
    @classmethod
    def _sql_tool_database_is_not_mahsms(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        own = info.data.get("database_url")
        if (
            value is not None
            and own is not None
            and value.get_secret_value() == own.get_secret_value()
        ):
            raise ValueError(
                "must not be MAHSM_DATABASE_URL (agents would read every user's tasks);"
                " point it at a database and role agents may read"
            )
        return value

    @model_validator(mode="after")
    def _ui_url_follows_ui_port(self) -> Settings:
        if "temporal_ui_url" not in self.model_fields_set:
            self.temporal_ui_url = f"http://127.0.0.1:{self.temporal_ui_port}"
        return self

    @property
    def uses_embedded_temporal(self) -> bool:
        """True when `mahsm up` must start its own Temporal dev server."""
        return self.temporal_address is None

    @property
    def uses_embedded_postgres(self) -> bool:
        """True when `mahsm up` must start its own Postgres."""
        return self.database_url is None

    @property
    def temporal_target(self) -> str:
        """The Temporal address to connect to (the embedded default when unset)."""
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"

    def workspace_root(self) -> Path:
        """Directory holding one sandboxed workspace per task."""
        return self.data_dir.resolve() / "workspaces"

    # Worker stop: in-flight activities may finish for this long before they are cancelled.
    worker_shutdown_grace_s: float = Field(default=30.0, ge=0, le=3600)

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        if value.upper() not in logging.getLevelNamesMapping():
            raise ValueError("expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return value

    # Provider routing: attempts per model of a fallback chain, and the circuit breakers.
    fallback_attempts: int = Field(
        default=3, ge=1, le=20, description="attempts per model before the chain's next model"
    )
    breaker_failures: int = Field(
        default=5, ge=1, le=10_000, description="failures within the window that open a circuit"
    )
    breaker_window_s: float = Field(default=60.0, gt=0, le=24 * 3600)
    breaker_cooldown_s: float = Field(
        default=30.0, gt=0, le=24 * 3600, description="open this long before one probe call"
    )
    breaker_skip_providers: str = Field(
        default="scripted", description="comma-separated providers no breaker guards"
    )

    # Middleware around every LLM call (docs/middleware.md): the worker default, and modules
    # whose Middleware subclasses are registered besides the built-ins and entry points.
    middleware: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="comma-separated middleware names run around every LLM call of a task"
        " that chooses none, e.g. 'pii,injection_guard:block'",
    )
    middleware_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="comma-separated modules whose Middleware subclasses are registered",
    )

    # Code a pipeline names by import path (transforms, DSPy signatures and programs) runs on
    # the workers: only modules under these packages may be imported for it (entry points,
    # installed by the operator, always may).
    code_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["examples"],
        description="comma-separated packages whose functions and classes pipelines may name"
        " by import path",
    )

    # Observability (docs/observability.md); the exporters' own variables (LANGFUSE_*,
    # OTEL_EXPORTER_OTLP_ENDPOINT) are read by `mahsm.tracing`.
    trace_content: bool = Field(
        default=True,
        description="record prompts, completions and tool arguments/results on spans"
        " (redacted); false keeps only sizes, tokens, cost and ids",
    )
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="port of a worker's Prometheus /metrics"
    )

    admin_users: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="users (of MAHSM_API_KEYS) whose keys see every user's usage (GET /usage)",
    )

    @field_validator(
        "middleware", "middleware_modules", "code_modules", "admin_users", mode="before"
    )
    @classmethod
    def _parse_comma_list(cls, raw: object) -> object:
        if isinstance(raw, str):
            return [item.strip() for item in raw.split(",") if item.strip()]
        return raw

    @field_validator("middleware")
    @classmethod
    def _check_middleware_names(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not re.fullmatch(MIDDLEWARE_NAME_PATTERN, name)]
        if bad:
            raise ValueError(f"{', '.join(bad)}: expected names like 'pii' or 'pii:block'")
        return value

    # Experiments: where branches are logged (docs/experiments.md).
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI; unset: MLFLOW_TRACKING_URI, else a SQLite store in"
        " data_dir",
    )
    mlflow_port: int = Field(default=5000, ge=1, le=65535, description="`mahsm up`'s MLflow UI")
    mcp_servers: Path | None = Field(
        default=None,
        description="YAML/JSON file listing the MCP servers whose tools this worker offers"
        " (docs/tools.md); unset = none",
    )
    mcp_connect_timeout_s: float = Field(
        default=30.0, gt=0, description="how long connecting to (starting) one MCP server may take"
    )

    # Live token streams (docs/llm.md): the text of running LLM calls, pushed to SSE streams.
    stream_tokens: bool = Field(
        default=True,
        description="Workers publish the text of running LLM calls (providers then use their"
        " streaming APIs); false: plain calls, nothing published",
    )
    stream_interval_ms: int = Field(
        default=75,
        ge=10,
        le=5000,
        description="How often a running call's text is cut into a published chunk",
    )

    # Agent profiles (docs/profiles.md).
    profiles: Path | None = Field(
        default=None,
        description="a YAML file or folder of agent profiles this worker serves, one pool each",
    )
    profile_entry_points: bool = Field(
        default=True, description="also load the profiles of `mahsm.profiles` entry points"
    )

    def mlflow_uri(self) -> str:
        """The tracking URI experiments log to (read when called, never at import)."""
        import os

        chosen = self.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        return chosen or f"sqlite:///{self.data_dir.resolve() / 'mlflow.db'}"


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else "?"
        lines.append(f"  MAHSM_{field.upper()}: {item['msg']}")
    return "Invalid configuration:\n" + "\n".join(lines) + "\nFix the variable (or .env) and retry."


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning validation errors into one readable `SettingsError`."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise SettingsError(_describe(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return load_settings()
