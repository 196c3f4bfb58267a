"""The byte bound on what one tool call returns (`MAHSM_TOOL_OUTPUT_MAX_BYTES`).

The `tool_execute` activity cuts every result at the bound, with a note telling the model
what happened. Built-in tools that read data incrementally (SQL rows, file bytes) stop
reading at `data_budget` instead, so a huge result never sits in the worker's memory.
"""

from __future__ import annotations

NOTE_RESERVE_BYTES = 1024
"""Room kept under the bound for a tool's own framing and truncation note."""


def data_budget(max_bytes: int) -> int:
    """How many bytes of data a tool may read so that its whole result stays under `max_bytes`."""
    return max(1, max_bytes - NOTE_RESERVE_BYTES)


def cut_utf8(data: bytes, limit: int) -> str:
    """The first `limit` bytes of UTF-8 `data` as text, never splitting a character."""
    return data[:limit].decode("utf-8", errors="ignore")


def truncation_note(shown: int, total: int | None, hint: str) -> str:
    """The note a truncated result ends with.

    Args:
        shown: Bytes of the result kept.
        total: Bytes the full result had, or None when the tool stopped reading before knowing.
        hint: How the model can get the rest, e.g. "filter with WHERE or page with OFFSET".
    """
    of = f"{total}" if total is not None else "more"
    return f"[output truncated at {shown} bytes of {of}; {hint}]"


def bound_output(text: str, max_bytes: int) -> str:
    """`text` if it fits `max_bytes` (UTF-8), else its head and a truncation note.

    Args:
        text: A tool's result.
        max_bytes: The bound (`settings.tool_output_max_bytes`).

    Returns:
        Text of at most `max_bytes` bytes.
    """
    if len(text) * 4 <= max_bytes:  # fits whatever the characters are; skips the encoding
        return text
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    head = cut_utf8(data, data_budget(max_bytes))
    shown = len(head.encode("utf-8"))
    note = truncation_note(shown, len(data), "ask for less: filter, select fewer fields or page")
    return f"{head}\n{note}"
