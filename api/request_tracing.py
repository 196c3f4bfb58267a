"""A span per API request (the root of a task's trace when the request starts one).

Pure ASGI middleware: the span is current while the route runs, so the workflow the route
starts carries it in its Temporal headers; the request's log lines carry its `trace_id`
(`mahsm.logging.add_trace_ids`). With tracing off the span is a no-op.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TRACER = "mahsm.api"
_UNTRACED = ("/metrics", "/health")


class RequestTracingMiddleware:
    """Opens `HTTP <method> <path>` spans for HTTP requests (not for `/metrics`, `/health`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request inside its span."""
        if scope["type"] != "http" or scope["path"] in _UNTRACED:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        with trace.get_tracer(TRACER).start_as_current_span(
            f"HTTP {method} {scope['path']}",
            kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope["path"]},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:

            async def sending(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            await self.app(scope, receive, sending)
