"""422 for text Postgres cannot store: NUL characters and lone UTF-16 surrogates.

Postgres refuses NUL (U+0000) in `text` and asyncpg cannot encode a lone surrogate, so such
text would otherwise surface as 503 `database_unavailable` (a read) or break the task's writes
later (a body). Every query parameter, path parameter and request body (as parsed JSON, in
`json_body`) is checked up front and answered 422 naming the field, like any other validation
error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from fastapi import Request

from mahsm.api.deps import invalid

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _problem(text: str) -> str | None:
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "must not contain NUL characters (\\u0000)"
    return "must not contain lone UTF-16 surrogates"


def _walk(value: Any, loc: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if isinstance(value, str):
        problem = _problem(value)
        if problem is not None:
            yield loc, problem
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and (problem := _problem(key)) is not None:
                yield (*loc, key), f"key {problem}"
            yield from _walk(item, (*loc, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _walk(item, (*loc, index))


def _reject(found: list[tuple[tuple[str | int, ...], str]]) -> None:
    if found:  # the first 20: a body of a million NULs must not make a message of megabytes
        raise invalid(
            [{"loc": list(loc), "msg": msg, "type": "unstorable_text"} for loc, msg in found[:20]]
        )


async def reject_unstorable_params(request: Request) -> None:  # async: no thread hop
    """Dependency: 422 when a query or path parameter holds unstorable text."""
    found = list(_walk(dict(request.path_params), ("path",)))
    for key, value in request.query_params.multi_items():
        found += _walk({key: value}, ("query",))
    _reject(found)


def unstorable(value: Any, at: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], str]]:
    """Each place in `value` (under `at`) whose text Postgres cannot store, and why."""
    return list(_walk(value, at))


def reject_unstorable_json(body: Any) -> None:
    """422 when any text of a JSON request body (values or keys) is unstorable.

    Runs on the parsed JSON before model validation, so a validator that echoes the text in
    its message (pydantic cannot encode a lone surrogate) never sees it.
    """
    _reject(unstorable(body, ("body",)))
