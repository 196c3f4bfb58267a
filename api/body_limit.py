"""A cap on request body size, so that no client can make the API buffer arbitrary data."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mahsm.api.deps import ApiError

MAX_BODY_BYTES = 1024 * 1024


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        code="payload_too_large",
        message=f"The request body exceeds {limit} bytes; send a smaller request.",
        details={"max_bytes": limit},
    )


class BodyLimitMiddleware:
    """Answer 413 `payload_too_large` to bodies over `max_bytes` (declared or streamed)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the declared length, then count the bytes as the app reads them."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._reject(send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _too_large(self.max_bytes)  # rendered by the app's error handler
            return message

        await self.app(scope, limited_receive, send)

    async def _reject(self, send: Send) -> None:
        error = _too_large(self.max_bytes)
        body = json.dumps(
            {"code": error.code, "message": error.message, "details": error.details}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
