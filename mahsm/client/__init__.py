"""Python client of MAHSM: `MahsmClient` (async) and `SyncMahsmClient` (blocking).

See docs/client.md.
"""

from mahsm.client.client import MahsmClient, ProgressCallback
from mahsm.client.errors import (
    AuthError,
    Conflict,
    InvalidRequest,
    MahsmError,
    ServiceUnavailable,
    TaskNotFound,
)
from mahsm.client.models import (
    AgentPool,
    AgentPools,
    PipelinePage,
    PipelineSummary,
    PipelineVersion,
    RegisteredPipeline,
    TaskPage,
    Worker,
)
from mahsm.client.sync import SyncMahsmClient

__all__ = [
    "AgentPool",
    "AgentPools",
    "AuthError",
    "Conflict",
    "InvalidRequest",
    "MahsmClient",
    "MahsmError",
    "PipelinePage",
    "PipelineSummary",
    "PipelineVersion",
    "ProgressCallback",
    "RegisteredPipeline",
    "ServiceUnavailable",
    "SyncMahsmClient",
    "TaskNotFound",
    "TaskPage",
    "Worker",
]
