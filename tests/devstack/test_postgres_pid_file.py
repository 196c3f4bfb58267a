from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mahsm.devstack.postgres import EmbeddedPostgres


def _server_with_pid_file(tmp_path: Path, pid: int) -> EmbeddedPostgres:
    server = EmbeddedPostgres(tmp_path / "pgdata", port=1)
    server.pgdata.mkdir()
    (server.pgdata / "postmaster.pid").write_text(f"{pid}\n{server.pgdata}\n")
    return server


def test_pid_file_of_a_dead_server_is_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    server = _server_with_pid_file(tmp_path, dead.pid)
    server._remove_stale_pid_file()
    assert not (server.pgdata / "postmaster.pid").exists()


def test_pid_file_whose_pid_was_reused_by_another_program_is_removed(tmp_path: Path) -> None:
    server = _server_with_pid_file(tmp_path, os.getpid())  # alive, but not a postgres
    server._remove_stale_pid_file()
    assert not (server.pgdata / "postmaster.pid").exists()


def test_pid_file_of_a_live_postgres_is_kept(
    tmp_path: Path, postgres_server: EmbeddedPostgres
) -> None:
    assert postgres_server.process is not None and postgres_server.process.pid is not None
    server = _server_with_pid_file(tmp_path, postgres_server.process.pid)
    with pytest.raises(RuntimeError, match="already runs on"):
        server._remove_stale_pid_file()
    assert (server.pgdata / "postmaster.pid").exists()
