"""A fake OpenAI chat-completions server that answers per model, for routing tests.

Each model has a script: statuses to answer in order, then a default status. 200 answers
"answer from <model>" (as OpenAI's SSE stream when the request asks for one); any other
status an OpenAI-shaped error. Every request is recorded with its model, so a test can count
the calls each model received (or did not).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.activities.llm.llm_fake_server import openai_completion, openai_error, openai_events


class ModelServer:
    """Serves `/v1/chat/completions` on 127.0.0.1:<free port> from a background thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[int]] = {}
        self._defaults: dict[str, int] = {}
        self.received: list[tuple[str, float]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body: dict[str, Any] = json.loads(self.rfile.read(length) or b"{}")
                model = str(body.get("model"))
                status = server._next_status(model)
                if status == 200 and body.get("stream"):
                    self.send_response(200)
                    self.send_header("content-type", "text/event-stream")
                    self.end_headers()
                    answer = openai_completion(content=f"answer from {model}")
                    usage = bool(body.get("stream_options", {}).get("include_usage"))
                    for event in openai_events(answer, usage=usage):
                        self.wfile.write(event.encode())
                    return
                reply = (
                    openai_completion(content=f"answer from {model}")
                    if status == 200
                    else openai_error(f"{model} failed with {status}", "server_error")
                )
                payload = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def script(self, model: str, *statuses: int, then: int = 200) -> None:
        """`model` (without the provider) answers `statuses` in order, then `then` forever."""
        with self._lock:
            self._scripts[model] = deque(statuses)
            self._defaults[model] = then

    def calls(self, model: str) -> int:
        """Requests `model` received so far."""
        with self._lock:
            return sum(1 for m, _ in self.received if m == model)

    def times(self, model: str) -> list[float]:
        """When (`time.monotonic()`) each request of `model` arrived."""
        with self._lock:
            return [at for m, at in self.received if m == model]

    def _next_status(self, model: str) -> int:
        with self._lock:
            self.received.append((model, time.monotonic()))
            script = self._scripts.get(model)
            if script:
                return script.popleft()
            return self._defaults.get(model, 200)


@contextmanager
def model_server() -> Iterator[ModelServer]:
    """A running `ModelServer`, stopped at the end of the block."""
    server = ModelServer()
    server._thread.start()
    try:
        yield server
    finally:
        server._httpd.shutdown()
        server._httpd.server_close()
        server._thread.join(timeout=5)
