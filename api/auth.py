"""API-key authentication: `Authorization: Bearer <key>`, each key belonging to one user.

With no keys configured (`MAHSM_API_KEYS` empty) authentication is off and every caller is
anonymous; `api/__main__.py` then refuses to bind to anything but loopback.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mahsm.api.deps import ApiError, SettingsDep

_bearer = HTTPBearer(
    auto_error=False,
    description="An API key from MAHSM_API_KEYS; required when keys are configured.",
)


@dataclass(frozen=True)
class Caller:
    """Who is calling: `user` is None when authentication is off (everything is visible)."""

    user: str | None

    def may_see(self, owner: str | None) -> bool:
        """True when the caller may see and act on a task owned by `owner`."""
        return self.user is None or self.user == owner


def _unauthorized(message: str) -> ApiError:
    error = ApiError(401, code="unauthorized", message=message)
    error.headers = {"WWW-Authenticate": 'Bearer realm="mahsm"'}
    return error


async def authenticate(  # async: FastAPI runs a plain `def` dependency in a thread
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The caller of this request; 401 when keys are configured and none valid was sent."""
    if not settings.api_keys:
        return Caller(user=None)
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("Send 'Authorization: Bearer <key>' with a key from MAHSM_API_KEYS.")
    sent = credentials.credentials.encode()
    for key, user in settings.api_keys.items():
        if secrets.compare_digest(sent, key.encode()):
            return Caller(user=user)
    raise _unauthorized("The API key is not valid; check MAHSM_API_KEYS on the server.")


CallerDep = Annotated[Caller, Depends(authenticate)]
