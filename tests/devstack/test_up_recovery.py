"""`mahsm up` keeps going when its Postgres dies, also when run as root from a private folder."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
from pathlib import Path

import pytest

from tests.devstack.up_harness import (
    WORKER_PRESENT,
    Stack,
    child_pids,
    ensure_stopped,
    stop_and_assert_clean,
    wait_for,
    wait_healthy,
)

FACTORIAL = "What is the factorial of 10? Use the calculator."
SALES = "Analyze our quarterly sales: collect the figures, compute the growth, write a report."


def _modes(path: Path) -> dict[Path, int]:
    return {p: stat.S_IMODE(p.stat().st_mode) for p in (path, *path.parents)}


def _task_status(stack: Stack, task_id: str) -> str:
    result = stack.run("status", task_id, "--json", "--api", stack.api)
    return str(json.loads(result.stdout)["status"]) if result.stdout.strip() else "?"


@pytest.mark.skipif(not WORKER_PRESENT, reason="`python -m mahsm.workers` does not exist yet")
def test_up_from_a_private_folder_restarts_a_dead_postgres_and_tasks_keep_working(
    stack: Stack,
) -> None:
    # Like /root/project: a 0700 folder. As root, Postgres runs as a system user that cannot
    # reach it; nothing outside the data dir may change mode for that.
    private = stack.data_dir.parent / "private"
    private.mkdir(mode=0o700)
    stack.data_dir = private / "data"
    stack.env["MAHSM_DATA_DIR"] = str(stack.data_dir)
    before = _modes(private)
    process = stack.start()
    try:
        wait_healthy(stack, process)
        assert _modes(private) == before

        submitted = stack.run("submit", SALES, "--model", "scripted/demo", "--api", stack.api)
        assert submitted.returncode == 0, submitted.stderr
        in_flight = submitted.stdout.split("Submitted ", 1)[1].split()[0]

        postgres = child_pids(stack)["postgres"]
        os.killpg(postgres, signal.SIGKILL)
        wait_for(lambda: child_pids(stack)["postgres"] != postgres, "Postgres restart", 60)
        wait_for(lambda: "Postgres is back." in stack.output(), "Postgres back", 60)
        assert "Postgres exited (code -9); restarting on its data" in " ".join(
            stack.output().split()
        )
        assert process.poll() is None, stack.output()

        # The task that was running when Postgres died completes; new tasks run too.
        wait_for(lambda: _task_status(stack, in_flight) == "completed", "in-flight task", 120)
        after = stack.run(
            "submit",
            FACTORIAL,
            "--model",
            "scripted/demo",
            "--wait",
            "--api",
            stack.api,
            timeout=120,
        )
        assert after.returncode == 0, after.stdout + after.stderr
        assert "3628800" in after.stdout.replace(",", "")
        stop_and_assert_clean(stack, process, child_pids(stack))
        assert _modes(private) == before
    finally:
        ensure_stopped(process)
        cluster = stack.data_dir / "postgres"
        if cluster.is_symlink():  # moved out of the server user's way (as root): ours to remove
            shutil.rmtree(cluster.resolve().parent, ignore_errors=True)
