"""A tiny HTTP server speaking just enough of the OpenAI and Anthropic protocols for tests.

Tests queue canned replies (status, JSON body, headers); the server answers requests in
order and records what it received, so a test can assert both what the real SDK sent and
how many times it was called.

For routing tests (fallback chains, breakers) a model can instead have a script of statuses
(`FakeLLMServer.script`): its requests are answered from it, whatever their order among
other models' requests, 200 as "answer from <model>"; `calls` and `times` count them.

A request asking for a stream (`"stream": true`) gets its canned 200 body as the provider's
streaming protocol (OpenAI's `chat.completion.chunk`s, Anthropic's message events), split
into small pieces; `Reply.cut_after` ends such a stream after that many events, as a
connection that breaks mid-answer.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

AUTHORIZATION = "{authorization}"
"""In a reply body: replaced by the request's Authorization header."""
OPENAI_TEST_KEY = "sk-test-key-0123456789"


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    cut_after: int | None = None
    """Streamed: stop (and close the connection) after this many events."""
    event_delay_s: float = 0.0
    """Streamed: pause before each event."""


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


class FakeLLMServer:
    """Serves queued or per-model scripted replies on 127.0.0.1:<free port> from a thread.

    A request is answered by its model's script if it has one, else by the next queued reply;
    with neither, by "answer from <model>" when `answer_unscripted`, else by a 500.
    """

    def __init__(self, *, answer_unscripted: bool = False) -> None:
        self.replies: deque[Reply] = deque()
        self.received: list[Received] = []
        self.answer_unscripted = answer_unscripted
        self._scripts: dict[str, deque[int]] = {}
        self._defaults: dict[str, int] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                with server._lock:
                    server.received.append(
                        Received(
                            path=self.path,
                            headers={k.lower(): v for k, v in self.headers.items()},
                            body=json.loads(raw or b"{}"),
                            at=time.monotonic(),
                        )
                    )
                    reply = server._next_reply(server.received[-1].body)
                body = server.received[-1].body
                if reply.status == 200 and body.get("stream"):
                    self._stream(reply, body)
                    return
                # A reply may echo the request's credentials, as some providers' errors do.
                payload = (
                    json.dumps(reply.body)
                    .replace(AUTHORIZATION, self.headers.get("authorization") or "")
                    .encode()
                )
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def _stream(self, reply: Reply, body: dict[str, Any]) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                events = (
                    anthropic_events(reply.body)
                    if self.path.endswith("/messages")
                    else openai_events(
                        reply.body, usage=bool(body.get("stream_options", {}).get("include_usage"))
                    )
                )
                for count, event in enumerate(events):
                    if reply.cut_after is not None and count >= reply.cut_after:
                        break
                    time.sleep(reply.event_delay_s)
                    self.wfile.write(event.encode())
                    self.wfile.flush()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_url(self) -> str:
        """The base URL the openai SDK takes (`OPENAI_BASE_URL`)."""
        return f"{self.url}/v1"

    def use_as_openai(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Points the openai provider (key and base URL from the environment) at this server."""
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_TEST_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", self.openai_url)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def reset(self) -> None:
        with self._lock:
            self.replies.clear()
            self.received.clear()
            self._scripts.clear()
            self._defaults.clear()

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def script(self, model: str, *statuses: int, then: int = 200) -> None:
        """`model` (without the provider) answers `statuses` in order, then `then` forever."""
        with self._lock:
            self._scripts[model] = deque(statuses)
            self._defaults[model] = then

    def calls(self, model: str) -> int:
        """Requests `model` received so far."""
        return len(self.times(model))

    def times(self, model: str) -> list[float]:
        """When (`time.monotonic()`) each request of `model` arrived."""
        with self._lock:
            return [r.at for r in self.received if str(r.body.get("model")) == model]

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        """Called with the lock held."""
        model = str(body.get("model"))
        if model in self._defaults:
            script = self._scripts[model]
            return _model_reply(model, script.popleft() if script else self._defaults[model])
        if self.replies:
            return self.replies.popleft()
        if self.answer_unscripted:
            return _model_reply(model, 200)
        return Reply(500, {"error": {"message": "no canned reply left"}})


def _model_reply(model: str, status: int) -> Reply:
    if status == 200:
        return Reply(200, openai_completion(content=f"answer from {model}"))
    return Reply(status, openai_error(f"{model} failed with {status}", "server_error"))


@contextmanager
def running_llm_server(*, answer_unscripted: bool = False) -> Iterator[FakeLLMServer]:
    """A running `FakeLLMServer`, stopped at the end of the block."""
    server = FakeLLMServer(answer_unscripted=answer_unscripted)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ---- canned bodies -----------------------------------------------------------------------


def openai_completion(
    *,
    content: str | None = None,
    tool_calls: list[tuple[str, str, str]] | None = None,
    finish_reason: str = "stop",
    prompt_tokens: int = 11,
    completion_tokens: int = 5,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
            for cid, name, args in tool_calls
        ]
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def openai_error(message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def anthropic_message(
    content: list[dict[str, Any]],
    *,
    stop_reason: str = "end_turn",
    input_tokens: int = 20,
    output_tokens: int = 8,
    cache_read_input_tokens: int | None = None,
) -> dict[str, Any]:
    usage: dict[str, Any] = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    if cache_read_input_tokens is not None:
        usage["cache_read_input_tokens"] = cache_read_input_tokens
    return {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


def anthropic_error(message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


# ---- streaming protocols ------------------------------------------------------------------

_PIECES = re.compile(r"(?<=\s)(?=\S)")


def pieces(text: str) -> list[str]:
    """`text` cut after each run of whitespace: the deltas a streaming server sends."""
    return _PIECES.split(text) if text else []


def _halves(text: str) -> list[str]:
    middle = len(text) // 2
    return [part for part in (text[:middle], text[middle:]) if part]


def openai_events(completion: dict[str, Any], *, usage: bool) -> Iterator[str]:
    """A canned chat completion as OpenAI's SSE stream of `chat.completion.chunk`s."""
    base = {
        "id": completion["id"],
        "object": "chat.completion.chunk",
        "created": completion["created"],
        "model": completion["model"],
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return f"data: {json.dumps({**base, 'choices': [choice]})}\n\n"

    choice = completion["choices"][0]
    message = choice["message"]
    yield chunk({"role": "assistant", "content": ""})
    for piece in pieces(message.get("content") or ""):
        yield chunk({"content": piece})
    for index, call in enumerate(message.get("tool_calls") or []):
        function = call["function"]
        head = {"name": function["name"], "arguments": ""}
        yield chunk(
            {
                "tool_calls": [
                    {"index": index, "id": call["id"], "type": "function", "function": head}
                ]
            }
        )
        for part in _halves(function["arguments"]):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
    yield chunk({}, choice["finish_reason"])
    if usage:
        yield f"data: {json.dumps({**base, 'choices': [], 'usage': completion['usage']})}\n\n"
    yield "data: [DONE]\n\n"


def anthropic_events(message: dict[str, Any]) -> Iterator[str]:
    """A canned Messages API reply as Anthropic's SSE stream of message events."""

    def event(kind: str, data: dict[str, Any]) -> str:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"

    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    yield event("message_start", {"message": start})
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            yield event(
                "content_block_start",
                {"index": index, "content_block": {"type": "text", "text": ""}},
            )
            for piece in pieces(block["text"]):
                delta = {"type": "text_delta", "text": piece}
                yield event("content_block_delta", {"index": index, "delta": delta})
        else:
            empty = {**block, "input": {}}
            yield event("content_block_start", {"index": index, "content_block": empty})
            for part in _halves(json.dumps(block["input"])):
                delta = {"type": "input_json_delta", "partial_json": part}
                yield event("content_block_delta", {"index": index, "delta": delta})
        yield event("content_block_stop", {"index": index})
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    yield event(
        "message_delta", {"delta": delta, "usage": {"output_tokens": usage["output_tokens"]}}
    )
    yield event("message_stop", {})
