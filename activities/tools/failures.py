"""Which exceptions raised inside a tool are infrastructure failures, not the model's business.

An infrastructure failure (Postgres unreachable or restarting, a dropped connection, a
network error) must fail the `tool_execute` activity so that Temporal retries it; showing it
to the model as a tool error would make the agent reason about an outage and carry on without
the tool. Everything else a tool raises is reported to the model.

Workflows import the `mahsm.activities.tools` package (passed through): no I/O at import time.
"""

from __future__ import annotations

import errno

import asyncpg

# The server is gone, restarting or refusing connections: the same call can succeed later.
SERVER_UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, incl. ConnectionDoesNotExistError
    asyncpg.CannotConnectNowError,  # 57P03: starting up / shutting down / in recovery
    asyncpg.AdminShutdownError,  # 57P01
    asyncpg.CrashShutdownError,  # 57P02
    asyncpg.TooManyConnectionsError,  # 53300
)

# errnos of an OSError about a path the tool was given: the model's mistake, not an outage.
PATH_ERRNOS = frozenset(
    {
        errno.ENOENT,
        errno.EEXIST,
        errno.EACCES,
        errno.EPERM,
        errno.EISDIR,
        errno.ENOTDIR,
        errno.ENAMETOOLONG,
        errno.ELOOP,
        errno.ENOTEMPTY,
    }
)


def is_path_error(error: BaseException) -> bool:
    """True for a filesystem error about a named path (no such file, permission denied...).

    Such errors carry the path in `filename`; socket errors (refused, reset, unreachable) and
    device errors (disk full, I/O error, read-only filesystem) do not match.
    """
    return isinstance(error, OSError) and error.filename is not None and error.errno in PATH_ERRNOS


def is_infrastructure_error(error: BaseException) -> bool:
    """True when `error` must fail the activity (Temporal retries it) instead of reaching the model.

    Args:
        error: An exception raised by a tool.

    Returns:
        True for connection-level failures: asyncpg's connection, shutdown and
        too-many-connections errors; asyncpg `InterfaceError` (closed pool or connection)
        except its client-side value errors (`DataError`, `ClientConfigurationError`);
        `ConnectionError`; and any other `OSError` except `TimeoutError` (a tool's own time
        limit, reported to the model) and path errors (`is_path_error`).
    """
    if isinstance(error, SERVER_UNAVAILABLE):
        return True
    if isinstance(error, asyncpg.InterfaceError):
        return not isinstance(error, ValueError)
    if isinstance(error, ConnectionError):
        return True
    if isinstance(error, TimeoutError):
        return False
    if isinstance(error, OSError):
        return not is_path_error(error)
    return False
