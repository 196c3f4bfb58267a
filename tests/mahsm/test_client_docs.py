"""Every Python block of docs/client.md runs, as written, against a live stack.

The blocks are written for the stack `mahsm up` starts; the test points their documented
addresses (API `http://127.0.0.1:8000`, Temporal `127.0.0.1:7233`, queue prefix `mahsm`) at
the test's own API, Temporal dev server and workers, and runs each block as a script.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from tests.cli.api_harness import ServedApi

DOC = Path(__file__).parents[2] / "docs/client.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", DOC.read_text(), flags=re.DOTALL | re.MULTILINE)


EXIT_CRASH_RETRIES = 3
"""Runs again after a crash at exit: a loaded CI host once saw two in a row."""


def test_the_page_has_its_examples() -> None:
    # Quick start, blocking, Temporal mode, errors, plain Temporal SDK.
    assert len(BLOCKS) == 5


def pointed_at(block: str, api: ServedApi) -> str:
    """The block with the documented `mahsm up` addresses replaced by the test stack's."""
    target = api.engine.client.service_client.config.target_host
    prefix = api.engine.settings.queue_prefix
    script = (
        block.replace("http://127.0.0.1:8000", api.url)
        .replace('"127.0.0.1:7233"', f'"{target}"')
        .replace('queue_prefix="mahsm"', f'queue_prefix="{prefix}"')
        .replace('"mahsm-tasks"', f'"{prefix}-tasks"')
    )
    for default in ("127.0.0.1:8000", "127.0.0.1:7233", '"mahsm"', '"mahsm-tasks"'):
        assert default not in script, f"an address the test does not redirect: {default}"
    return script


def environment_without_mahsm() -> dict[str, str]:
    """This process's environment without its `MAHSM_*` settings."""
    return {key: value for key, value in os.environ.items() if not key.startswith("MAHSM_")}


async def run(
    script: Path, env: dict[str, str], *, cwd: Path | None = None
) -> tuple[int | None, str, str]:
    """Run `script` with this interpreter (in its own folder unless `cwd` says otherwise: away
    from the checkout's .env file); its exit code, output and errors."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        cwd=cwd or script.parent,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode, stdout.decode(), stderr.decode()


async def run_example(
    script: Path, env: dict[str, str], *, cwd: Path | None = None
) -> tuple[int | None, str, str]:
    """`run`, again when a signal killed the script (at most `EXIT_CRASH_RETRIES` times).

    temporalio/sdk-python#300: a client-only script may abort (SIGABRT "PyGILState_Release",
    or SIGSEGV) while its interpreter exits after its work is done; not the example's fault.
    """
    returncode, stdout, stderr = await run(script, env, cwd=cwd)
    for _ in range(EXIT_CRASH_RETRIES):
        if returncode is None or returncode >= 0:
            break
        returncode, stdout, stderr = await run(script, env, cwd=cwd)
    return returncode, stdout, stderr


@pytest.mark.parametrize("index", range(len(BLOCKS)))
async def test_the_example_runs_as_written(api: ServedApi, tmp_path: Path, index: int) -> None:
    script = tmp_path / f"example_{index}.py"
    script.write_text(pointed_at(BLOCKS[index], api))
    env = environment_without_mahsm() | {
        "MAHSM_TEMPORAL_ADDRESS": api.engine.client.service_client.config.target_host,
        "MAHSM_QUEUE_PREFIX": api.engine.settings.queue_prefix,
    }

    returncode, stdout, stderr = await run_example(script, env)

    assert returncode == 0, f"{stdout}\n{stderr}"
    assert stdout.strip()
    if "factorial of 10" in BLOCKS[index] and "Conflict" not in BLOCKS[index]:
        assert "3628800" in stdout
