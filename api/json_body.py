"""Request bodies are UTF-8 JSON (RFC 8259), and nothing else is guessed.

Starlette parses a body with `json.loads(bytes)`, which also detects UTF-16 and UTF-32; a
body in those encodings would be accepted although the API documents UTF-8. Routers built
with `route_class=Utf8JsonRoute` read the body as UTF-8 and answer 400 `bad_request` to any
other encoding.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from mahsm.api.deps import ApiError


class _Utf8JsonRequest(Request):
    async def json(self) -> Any:
        """The body parsed as JSON after decoding it strictly as UTF-8.

        Raises:
            ApiError: 400 `bad_request` when the body is not UTF-8. Malformed JSON still
                raises `json.JSONDecodeError`, which FastAPI answers 422 with its position.
        """
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ApiError(
                    400,
                    code="bad_request",
                    message=f"The body is not UTF-8 (byte {error.start} cannot be decoded);"
                    " send JSON encoded as UTF-8.",
                    details={"position": error.start},
                ) from error
            self._json = json.loads(text)
        return self._json


class Utf8JsonRoute(APIRoute):
    """An `APIRoute` whose JSON body must be UTF-8."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, given a request that decodes its body strictly as UTF-8."""
        handler = super().get_route_handler()

        async def utf8_handler(request: Request) -> Response:
            return await handler(_Utf8JsonRequest(request.scope, request.receive))

        return utf8_handler
