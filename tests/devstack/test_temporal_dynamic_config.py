"""The embedded Temporal server runs with MAHSM's dynamic config (task-queue reads unthrottled)."""

from __future__ import annotations

from pathlib import Path

from mahsm.devstack.process import free_port
from mahsm.devstack.temporal import QUEUE_READS_PER_S, TemporalDevServer, dynamic_config_flags


def test_each_history_queue_may_be_read_as_often_as_tasks_arrive() -> None:
    flags = dynamic_config_flags()
    values = dict(arg.split("=") for arg in flags[1::2])
    assert flags[::2] == ["--dynamic-config-value"] * 3
    assert values == {
        f"history.{queue}ProcessorMaxPollRPS": str(QUEUE_READS_PER_S)
        for queue in ("transfer", "timer", "visibility")
    }
    assert QUEUE_READS_PER_S >= 1000  # the server's default of 20 made each dispatch wait


def test_the_dev_server_starts_with_the_dynamic_config(tmp_path: Path) -> None:
    server = TemporalDevServer(
        tmp_path / "temporal.db", port=free_port(), ui_port=None, log_path=tmp_path / "t.log"
    )
    server.start()
    try:
        assert server.process is not None
        argv = server.process.argv
        for flag in dynamic_config_flags()[1::2]:
            assert argv[argv.index(flag) - 1] == "--dynamic-config-value"
        assert server._ready()  # accepted: the server is up and SERVING with it
    finally:
        server.stop()
