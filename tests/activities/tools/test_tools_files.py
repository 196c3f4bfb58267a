from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mahsm.activities.tools import ToolContext, ToolError
from mahsm.activities.tools.files import (
    MAX_WRITE_BYTES,
    list_files,
    read_file,
    write_file,
)

MakeContext = Callable[..., ToolContext]


@pytest.fixture
def context(make_context: MakeContext) -> ToolContext:
    return make_context(task_id="task-files")


def test_write_read_and_list_in_the_task_workspace(context: ToolContext) -> None:
    assert write_file(context, "notes/todo.txt", "buy milk\n") == (
        "wrote 9 bytes to 'notes/todo.txt'"
    )
    assert read_file(context, "notes/todo.txt") == "buy milk\n"
    assert (context.workspace / "notes" / "todo.txt").read_text() == "buy milk\n"
    assert context.workspace == context.settings.workspace_root() / "task-files"
    write_file(context, "a.md", "é")  # UTF-8: 2 bytes
    assert list_files(context) == "a.md (2 bytes)\nnotes/\nnotes/todo.txt (9 bytes)"
    assert list_files(context, "notes") == "notes/todo.txt (9 bytes)"
    write_file(context, "a.md", "replaced")
    assert read_file(context, "a.md") == "replaced"
    assert not [p for p in context.workspace.rglob(".tmp-*")]  # temp files renamed away


def test_each_task_has_its_own_workspace(make_context: MakeContext) -> None:
    first, second = make_context(task_id="task-a"), make_context(task_id="task-b")
    write_file(first, "secret.txt", "a's data")
    with pytest.raises(ToolError, match="no file 'secret.txt'"):
        read_file(second, "secret.txt")
    assert list_files(second) == "'.' is empty"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/etc/passwd", "is absolute"),
        ("../task-other/x.txt", "contains '..'"),
        ("notes/../../x.txt", "contains '..'"),
        ("", "non-empty relative path"),
        ("a\x00b", "non-empty relative path"),
    ],
)
def test_paths_outside_the_workspace_are_refused(
    context: ToolContext, path: str, message: str
) -> None:
    with pytest.raises(ToolError, match=message):
        read_file(context, path)
    with pytest.raises(ToolError, match=message):
        write_file(context, path, "x")
    with pytest.raises(ToolError, match=message):
        list_files(context, path)


def test_symlinks_leading_outside_are_refused(context: ToolContext, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret")
    context.workspace.mkdir(parents=True)
    (context.workspace / "link.txt").symlink_to(outside / "secret.txt")
    (context.workspace / "linkdir").symlink_to(outside, target_is_directory=True)
    for path in ("link.txt", "linkdir/secret.txt", "linkdir"):
        with pytest.raises(ToolError, match="leads outside the workspace"):
            read_file(context, path)
    with pytest.raises(ToolError, match="leads outside"):
        write_file(context, "linkdir/new.txt", "escape")
    with pytest.raises(ToolError, match="leads outside"):
        write_file(context, "link.txt", "overwrite")
    with pytest.raises(ToolError, match="leads outside"):
        list_files(context, "linkdir")
    assert (outside / "secret.txt").read_text() == "top secret"
    assert not (outside / "new.txt").exists()
    listing = list_files(context)
    assert "link.txt (symlink)" in listing and "linkdir/ (symlink)" in listing
    assert "secret.txt" not in listing  # not followed
    (context.workspace / "inner.txt").write_text("fine")
    (context.workspace / "alias.txt").symlink_to(context.workspace / "inner.txt")
    assert read_file(context, "alias.txt") == "fine"  # a link inside the workspace is fine


def test_size_limits(context: ToolContext) -> None:
    with pytest.raises(ToolError, match="writes up to 2 MiB"):
        write_file(context, "big.txt", "x" * (MAX_WRITE_BYTES + 1))
    assert not (context.workspace / "big.txt").exists()
    write_file(context, "max.txt", "x" * MAX_WRITE_BYTES)
    one_mib = context.settings.tool_output_max_bytes - 1024
    (context.workspace / "fits.txt").write_text("y" * one_mib)
    assert read_file(context, "fits.txt") == "y" * one_mib  # up to the output bound: whole


_NEXT_OFFSET = re.compile(
    r"\n\[output truncated at (\d+) bytes of (\d+); call read_file with"
    r" offset=(\d+) to read on\]$"
)


def test_a_file_over_the_output_bound_is_read_in_bounded_parts(
    make_context: MakeContext, settings_with: Callable[..., Any]
) -> None:
    """Memory and result stay within MAHSM_TOOL_OUTPUT_MAX_BYTES whatever the file's size;
    the note gives the offset of the next part, and the parts rebuild the file exactly."""
    bound = 16 * 1024
    context = make_context(settings=settings_with(tool_output_max_bytes=bound))
    context.workspace.mkdir(parents=True)
    text = "".join(f"line {i}: é€😀\n" for i in range(5000))  # 1-4 byte characters
    (context.workspace / "big.txt").write_text(text)
    size = len(text.encode())
    parts, offset = [], 0
    while True:
        part = read_file(context, "big.txt", offset=offset)
        assert len(part.encode()) <= bound
        match = _NEXT_OFFSET.search(part)
        if match is None:
            parts.append(part)
            break
        shown, total, offset = (int(g) for g in match.groups())
        assert total == size - (offset - shown)
        parts.append(part[: match.start()])
    assert "".join(parts) == text
    assert len(parts) > size // bound  # really read in several parts

    with (context.workspace / "huge.txt").open("wb") as handle:
        handle.truncate(8 * 1024**3)  # 8 GiB, sparse: costs no disk; read as NUL text
    head = read_file(context, "huge.txt")
    assert len(head.encode()) <= bound
    assert head.endswith(f"of {8 * 1024**3}; call read_file with offset={bound - 1024} to read on]")


def test_non_text_and_missing_files_are_explained(context: ToolContext) -> None:
    context.workspace.mkdir(parents=True)
    (context.workspace / "image.bin").write_bytes(b"\xff\xd8\xff\x00")
    with pytest.raises(ToolError, match="not UTF-8 text"):
        read_file(context, "image.bin")
    with pytest.raises(ToolError, match="no file 'nope.txt'.*list_files"):
        read_file(context, "nope.txt")
    os.mkdir(context.workspace / "dir")
    with pytest.raises(ToolError, match="not a regular file"):
        read_file(context, "dir")
    with pytest.raises(ToolError, match="is a directory"):
        write_file(context, "dir", "x")
    with pytest.raises(ToolError, match="not a directory"):
        list_files(context, "image.bin")


def test_filesystem_errors_about_the_given_path_are_tool_errors(context: ToolContext) -> None:
    """Not a directory, name too long...: the model's to fix, so a ToolError naming its path
    (not the worker's absolute path), never an infrastructure failure."""
    write_file(context, "a.txt", "x")
    with pytest.raises(ToolError) as under_a_file:
        write_file(context, "a.txt/b.txt", "y")  # a parent that is a file
    assert str(under_a_file.value) in {
        "'a.txt/b.txt': File exists",
        "'a.txt/b.txt': Not a directory",
    }
    long_name = "n" * 300  # over NAME_MAX (255)
    for call in (
        lambda: write_file(context, long_name, "y"),
        lambda: read_file(context, long_name),
        lambda: list_files(context, long_name),
    ):
        with pytest.raises(ToolError) as too_long:
            call()
        assert "File name too long" in str(too_long.value)
        assert str(context.workspace) not in str(too_long.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file_is_a_tool_error(context: ToolContext) -> None:
    write_file(context, "locked.txt", "x")
    (context.workspace / "locked.txt").chmod(0)
    with pytest.raises(ToolError, match="'locked.txt': Permission denied"):
        read_file(context, "locked.txt")
