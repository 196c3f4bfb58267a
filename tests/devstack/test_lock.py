from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from mahsm.devstack.lock import LOCK_FILE_NAME, StackAlreadyRunning, StackLock


def test_second_holder_is_refused_with_the_pid(tmp_path: Path) -> None:
    first = StackLock(tmp_path)
    first.acquire()
    try:
        with pytest.raises(StackAlreadyRunning) as caught:
            StackLock(tmp_path).acquire()
        assert caught.value.pid == os.getpid()
        assert f"MAHSM is already running (pid {os.getpid()})" in str(caught.value)
    finally:
        first.release()
    second = StackLock(tmp_path)
    second.acquire()  # free again once released
    second.release()


def test_lock_of_a_dead_process_is_taken_over_and_its_children_stopped(tmp_path: Path) -> None:
    # A child left behind by a `mahsm up` that was SIGKILLed: own session, still running.
    orphan = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    state = {
        "pid": dead.pid,
        "children": {"worker": [orphan.pid, psutil.Process(orphan.pid).create_time()]},
    }
    (tmp_path / LOCK_FILE_NAME).write_text(json.dumps(state))
    lock = StackLock(tmp_path)
    try:
        assert lock.acquire() == ["worker"]
        assert orphan.wait(timeout=10) is not None
        assert json.loads((tmp_path / LOCK_FILE_NAME).read_text())["pid"] == os.getpid()
    finally:
        lock.release()
        if orphan.poll() is None:
            orphan.kill()


def test_a_reused_pid_is_not_killed(tmp_path: Path) -> None:
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        # Recorded with another start time: the pid now belongs to an unrelated process.
        state = {"pid": 1, "children": {"api": [bystander.pid, 12345.0]}}
        (tmp_path / LOCK_FILE_NAME).write_text(json.dumps(state))
        lock = StackLock(tmp_path)
        assert lock.acquire() == []
        lock.release()
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
