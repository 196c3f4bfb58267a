"""Record the replay fixtures: `python -m tests.replay.record [--out DIR] [CASE ...]`.

Starts a throwaway Temporal dev server and embedded Postgres, runs every case of
`tests/replay/cases.py` with in-process workers, and writes the history of each
`TaskWorkflow` and of each of its `AgentWorkflow` children as JSON into
`tests/replay/histories/v2/` as `<case>__<workflow id>.json` (the replayer needs the workflow
id: the task id is part of the commands the workflow issues). `histories/v1/` holds the
recordings of the engine before `engine-v2` (agents as child workflows), kept so that their
path keeps replaying. Re-record only after an intended change to workflow code (see
docs/testing.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import asyncpg
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from mahsm import search_attributes
from mahsm.db.migrate import migrate
from mahsm.db.pool import create_pool
from mahsm.devstack.postgres import EmbeddedPostgres
from mahsm.devstack.process import free_port
from mahsm.devstack.temporal import temporal_cli_path
from tests.engine_harness import running_engine
from tests.replay.cases import CASES, Case

HISTORIES = Path(__file__).parent / "histories"
CURRENT = HISTORIES / "v2"
SEPARATOR = "__"


def child_ids(history_json: dict[str, object]) -> list[str]:
    """Workflow ids of the children a workflow history started, in order."""
    ids: list[str] = []
    events = history_json.get("events", [])
    assert isinstance(events, list)
    for event in events:
        attributes = event.get("startChildWorkflowExecutionInitiatedEventAttributes")
        if attributes:
            ids.append(attributes["workflowId"])
    return ids


async def record_case(
    case: Case, *, client: Client, pool: asyncpg.Pool, data_dir: Path, out_dir: Path
) -> list[Path]:
    """Run one case to its end and write its histories; returns the files written."""
    data_dir.mkdir(parents=True, exist_ok=True)
    async with running_engine(
        client=client, pool=pool, data_dir=data_dir, scenario=case.scenario, **case.settings
    ) as engine:
        handle = await case.drive(engine)
    written: list[Path] = []
    history = await handle.fetch_history()
    text = history.to_json()
    path = out_dir / f"{case.name}{SEPARATOR}{handle.id}.json"
    path.write_text(text)
    written.append(path)
    for workflow_id in child_ids(json.loads(text)):
        child = await client.get_workflow_handle(workflow_id).fetch_history()
        path = out_dir / f"{case.name}{SEPARATOR}{workflow_id}.json"
        path.write_text(child.to_json())
        written.append(path)
    return written


def workflow_id_of(path: Path) -> str:
    """The workflow id a fixture file was recorded under."""
    return path.stem.split(SEPARATOR, 1)[1]


async def record(
    cases: Sequence[Case], *, client: Client, pool: asyncpg.Pool, data_root: Path, out_dir: Path
) -> list[Path]:
    """Record `cases` into `out_dir` (their previous files there are replaced)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for case in cases:
        for old in out_dir.glob(f"{case.name}{SEPARATOR}*.json"):
            old.unlink()
        written += await record_case(
            case, client=client, pool=pool, data_dir=data_root / case.name, out_dir=out_dir
        )
    return written


async def _main(names: Sequence[str], out_dir: Path) -> None:
    unknown = set(names) - {c.name for c in CASES}
    if unknown:
        raise SystemExit(f"unknown case(s): {', '.join(sorted(unknown))}")
    cases = [c for c in CASES if not names or c.name in names]
    # Outside any 0700 tree: Postgres runs as an unprivileged user when we are root.
    root = Path(tempfile.mkdtemp(prefix="mahsm-replay-record-"))
    root.chmod(0o711)
    postgres = EmbeddedPostgres(root / "pgdata", port=free_port(), log_path=root / "pg.log")
    try:
        postgres.start()
        url = postgres.create_database("replay")
        await migrate(url)
        pool = await create_pool(url)
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_cli_path(),
            data_converter=pydantic_data_converter,
            search_attributes=list(search_attributes.ALL),
            ip="127.0.0.1",
        )
        try:
            written = await record(
                cases, client=env.client, pool=pool, data_root=root / "data", out_dir=out_dir
            )
        finally:
            await env.shutdown()
            await pool.close()
    finally:
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)
    for path in written:
        print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help="case names (default: all)")
    parser.add_argument("--out", type=Path, default=CURRENT, help="output folder")
    args = parser.parse_args()
    asyncio.run(_main(args.cases, args.out))


if __name__ == "__main__":
    main()
