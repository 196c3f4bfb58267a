"""Opaque page cursors of the newest-first listings, `GET /tasks` and `GET /logs`.

A cursor is the keyset position of the last row of a page: base64url (unpadded) of a compact
JSON object, `t` the row's time, `i` its task id and, for a log event, `s` its seq.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from mahsm.api.deps import ApiError


@dataclass(frozen=True)
class Cursor:
    """A position in newest-first order: rows before (`at`, `task_id`[, `seq`]) come next."""

    at: datetime
    task_id: str
    seq: int | None = None

    def encode(self) -> str:
        """The opaque text a page's `next_cursor` carries."""
        data: dict[str, object] = {"t": self.at.isoformat(), "i": self.task_id}
        if self.seq is not None:
            data["s"] = self.seq
        raw = json.dumps(data, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def keyset(self) -> tuple[object, ...]:
        """The values to compare the listing's ordering columns with."""
        return (self.at, self.task_id) if self.seq is None else (self.at, self.task_id, self.seq)


def decode_cursor(cursor: str, *, listing: str, with_seq: bool = False) -> Cursor:
    """The position a cursor of `listing` (e.g. "GET /logs") points at.

    Raises:
        ApiError: 422 naming `query.cursor` when the text is not a cursor of `listing`.
    """
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        at = datetime.fromisoformat(data["t"])
        task_id = data["i"]
        if not isinstance(task_id, str) or "\x00" in task_id or at.tzinfo is None:
            raise ValueError("malformed cursor")
        task_id.encode("utf-8")  # UnicodeError (a ValueError) for a lone surrogate
        seq = data["s"] if with_seq else None
        if with_seq and (not isinstance(seq, int) or not 0 <= seq < 2**63):
            raise ValueError("malformed cursor")
        return Cursor(at.astimezone(UTC), task_id, seq)
    except (ValueError, TypeError, KeyError, OverflowError, binascii.Error) as error:
        raise ApiError(
            422,
            code="validation_error",
            message=f"Invalid request: query.cursor: not a cursor returned by {listing};"
            " pass the next_cursor of a previous page, or omit it for the first page.",
            details=[{"loc": ["query", "cursor"], "msg": "invalid cursor"}],
        ) from error
