"""File tools confined to the task's workspace: `read_file`, `write_file`, `list_files`.

Paths are relative to `settings.workspace_root() / <task_id>`. Absolute paths, `..` and
symlinks leading outside the workspace are refused: every path is resolved and must stay
inside. The functions are synchronous; the registry runs them in a thread.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from mahsm.activities.tools.failures import is_path_error
from mahsm.activities.tools.output import data_budget, truncation_note
from mahsm.activities.tools.registry import ToolContext, ToolError, tool
from mahsm.contracts.task import Capability

MAX_WRITE_BYTES = 2 * 1024 * 1024
MAX_LIST_ENTRIES = 1000
FILE_CAPABILITIES = [
    Capability.FILE_PROCESSING,
    Capability.CODE_GENERATION,
    Capability.DATA_ANALYSIS,
]


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB"


def workspace_root(context: ToolContext) -> Path:
    """The task's workspace, created on first use and fully resolved."""
    context.workspace.mkdir(parents=True, exist_ok=True)
    return context.workspace.resolve(strict=True)


def resolve_path(root: Path, path: str) -> Path:
    """Resolve `path` inside the workspace `root`, or raise `ToolError` saying why not.

    Args:
        root: The resolved workspace directory.
        path: A relative path given by the model.

    Returns:
        The absolute path, symlinks resolved, guaranteed to lie inside `root`.
    """
    if not path.strip() or "\x00" in path:
        raise ToolError("path must be a non-empty relative path such as 'notes/todo.txt'")
    relative = PurePosixPath(path)
    if relative.is_absolute():
        raise ToolError(f"'{path}' is absolute; use a path relative to the workspace")
    if ".." in relative.parts:
        raise ToolError(f"'{path}' contains '..'; paths must stay inside the workspace")
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise ToolError(f"'{path}' leads outside the workspace (through a symlink)")
    return target


@contextmanager
def _path_errors(path: str) -> Iterator[None]:
    """Report a filesystem error about `path` to the model as a `ToolError`.

    Not found, permission denied, not a directory, name too long...: the model's to fix. Other
    OSErrors (disk full, I/O error) propagate and fail the activity.
    """
    try:
        yield
    except OSError as error:
        if not is_path_error(error):
            raise
        raise ToolError(f"'{path}': {error.strerror or type(error).__name__}") from None


def _shown(root: Path, target: Path) -> str:
    return target.relative_to(root).as_posix() or "."


@tool(capabilities=FILE_CAPABILITIES)
def read_file(context: ToolContext, path: str, offset: int = 0) -> str:
    """Read a UTF-8 text file from the task's workspace; a large file is read in parts.

    A result that does not hold the whole file ends with a note giving the offset to read
    the next part from.

    Args:
        context: The call's context (not part of the schema).
        path: Path relative to the workspace, e.g. "data/input.csv".
        offset: Byte offset to start reading at; 0 reads from the start.
    """
    if offset < 0:
        raise ToolError("offset must be 0 or more")
    budget = data_budget(context.settings.tool_output_max_bytes)
    root = workspace_root(context)
    with _path_errors(path):
        target = resolve_path(root, path)
        if not target.exists():
            raise ToolError(f"no file '{path}' in the workspace; list_files shows what exists")
        if not target.is_file():
            raise ToolError(f"'{path}' is not a regular file")
        size = target.stat().st_size
        with target.open("rb") as handle:
            handle.seek(offset)
            data = handle.read(budget + 1)  # never more than the bound, whatever the size
    if len(data) <= budget and offset == 0:
        return _utf8(data, path)
    skipped, text = _utf8_part(data[:budget], path)
    shown = skipped + len(text.encode("utf-8"))
    if len(data) <= budget:
        return text
    hint = f"call read_file with offset={offset + shown} to read on"
    return f"{text}\n{truncation_note(shown, size - offset, hint)}"


def _utf8(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ToolError(f"'{path}' is not UTF-8 text; read_file reads text files only") from None


def _utf8_part(data: bytes, path: str) -> tuple[int, str]:
    """A part of a UTF-8 file cut at arbitrary bytes: (bytes skipped at the start, text).

    A character split by the start (continuation bytes) is skipped; one split by the end
    is left for the next part.
    """
    skipped = 0
    while skipped < min(3, len(data)) and data[skipped] & 0xC0 == 0x80:
        skipped += 1
    try:
        return skipped, data[skipped:].decode("utf-8")
    except UnicodeDecodeError as error:
        if error.reason == "unexpected end of data":
            return skipped, data[skipped : skipped + error.start].decode("utf-8")
        raise ToolError(f"'{path}' is not UTF-8 text; read_file reads text files only") from None


@tool(capabilities=FILE_CAPABILITIES, side_effects=True)
def write_file(context: ToolContext, path: str, content: str) -> str:
    """Create or replace a UTF-8 text file in the task's workspace (up to 2 MiB).

    Parent directories are created. The file is written to a temporary file first and then
    renamed, so readers never see half a file.

    Args:
        context: The call's context (not part of the schema).
        path: Path relative to the workspace, e.g. "out/report.md".
        content: The full text of the file.
    """
    data = content.encode("utf-8")
    if len(data) > MAX_WRITE_BYTES:
        raise ToolError(
            f"content is {len(data)} bytes; write_file writes up to {_mib(MAX_WRITE_BYTES)}"
        )
    root = workspace_root(context)
    with _path_errors(path):
        target = resolve_path(root, path)
        if target == root or target.is_dir():
            raise ToolError(f"'{path}' is a directory; give a file path")
        target.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(dir=target.parent, prefix=".tmp-", delete=False)
        try:
            with handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(handle.name, target)
        except BaseException:
            Path(handle.name).unlink(missing_ok=True)
            raise
    return f"wrote {len(data)} bytes to '{_shown(root, target)}'"


@tool(capabilities=FILE_CAPABILITIES)
def list_files(context: ToolContext, path: str = ".") -> str:
    """List the files and directories under a directory of the task's workspace, recursively.

    Directories end with '/'; files show their size; at most 1000 entries are listed.

    Args:
        context: The call's context (not part of the schema).
        path: Directory relative to the workspace; "." is the workspace itself.
    """
    root = workspace_root(context)
    with _path_errors(path):
        start = resolve_path(root, path)
        if not start.is_dir():
            raise ToolError(f"'{path}' is not a directory in the workspace")
    lines: list[str] = []
    truncated = False
    for directory, dirnames, filenames in os.walk(start):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".tmp-"))
        here = Path(directory)
        entries = [(name + "/", here / name) for name in dirnames]
        entries += [(name, here / name) for name in filenames if not name.startswith(".tmp-")]
        for label, entry in sorted(entries):
            if len(lines) >= MAX_LIST_ENTRIES:
                truncated = True
                break
            shown = (here / label).relative_to(root).as_posix() + ("/" if label[-1] == "/" else "")
            if entry.is_symlink():
                lines.append(f"{shown} (symlink)")
            elif label.endswith("/"):
                lines.append(shown)
            else:
                lines.append(f"{shown} ({entry.stat().st_size} bytes)")
        if truncated:
            break
    if not lines:
        return f"'{_shown(root, start)}' is empty"
    if truncated:
        lines.append(f"... truncated: only the first {MAX_LIST_ENTRIES} entries are shown")
    return "\n".join(lines)
