"""The exceptions of `MahsmClient` (defined in `mahsm.errors`, shared with the API)."""

from mahsm.errors import (
    AuthError,
    Conflict,
    InvalidRequest,
    MahsmError,
    ServiceUnavailable,
    TaskNotFound,
)

__all__ = [
    "AuthError",
    "Conflict",
    "InvalidRequest",
    "MahsmError",
    "ServiceUnavailable",
    "TaskNotFound",
]
