"""Request bodies are UTF-8 JSON (RFC 8259), and nothing else is guessed.

Starlette parses a body with `json.loads(bytes)`, which also detects UTF-16 and UTF-32; a
body in those encodings would be accepted although the API documents UTF-8. Routers built
with `route_class=Utf8JsonRoute` read the body as UTF-8 and answer 400 `bad_request` to any
other encoding. The parsed body is then checked before any model sees it: nested at most
`MAX_DEPTH` levels (deeper values overflow pydantic's serializer and Python's recursion
limit, in the 422 handler, Temporal's payloads and the store) and holding only text Postgres
can store (`text_guard`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from mahsm.api.deps import ApiError, invalid
from mahsm.api.text_guard import reject_unstorable_json

MAX_DEPTH = 64
TOO_DEEP = f"nests lists and objects deeper than {MAX_DEPTH} levels; flatten it"
TOO_LONG_NUMBER = "a number has more than 4300 digits; send it as text"


class _Utf8JsonRequest(Request):
    async def json(self) -> Any:
        """The body parsed as JSON after decoding it strictly as UTF-8.

        Raises:
            ApiError: 400 `bad_request` when the body is not UTF-8. Malformed JSON still
                raises `json.JSONDecodeError`, which FastAPI answers 422 with its position.
            ApiError: 422 `validation_error` naming the place where the body nests deeper
                than `MAX_DEPTH`, holds a number Python will not read (over 4300 digits)
                or text Postgres cannot store.
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
            try:
                value = json.loads(text)
            except RecursionError as error:  # nested about a thousand levels deep
                raise invalid([{"loc": ["body"], "msg": TOO_DEEP, "type": "too_deep"}]) from error
            except json.JSONDecodeError:
                raise
            except ValueError as error:  # int() refuses over 4300 digits (CVE-2020-10735)
                raise invalid([{"loc": ["body"], "msg": TOO_LONG_NUMBER}]) from error
            reject_too_deep(value)
            reject_unstorable_json(value)
            self._json = value
        return self._json


def too_deep(value: Any, at: tuple[str | int, ...] = ("body",)) -> tuple[str | int, ...] | None:
    """Where `value` nests lists and objects more than `MAX_DEPTH` levels deep, or None.

    Walks without recursion: the value can be as deep as the JSON parser allows.
    """
    pending: list[tuple[Any, tuple[str | int, ...]]] = [(value, at)]
    while pending:
        item, loc = pending.pop()
        if isinstance(item, dict):
            children: Any = item.items()
        elif isinstance(item, list):
            children = enumerate(item)
        else:
            continue
        if len(loc) - len(at) >= MAX_DEPTH:
            return loc
        pending.extend((child, (*loc, key)) for key, child in children)
    return None


def reject_too_deep(body: Any) -> None:
    """422 when `body` nests lists and objects more than `MAX_DEPTH` levels deep."""
    loc = too_deep(body)
    if loc is not None:
        raise invalid([{"loc": list(loc), "msg": TOO_DEEP, "type": "too_deep"}])


class Utf8JsonRoute(APIRoute):
    """An `APIRoute` whose JSON body must be UTF-8."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, given a request that decodes its body strictly as UTF-8."""
        handler = super().get_route_handler()

        async def utf8_handler(request: Request) -> Response:
            return await handler(_Utf8JsonRequest(request.scope, request.receive))

        return utf8_handler
