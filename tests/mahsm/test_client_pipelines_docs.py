"""Every Python block of docs/pipelines.md runs, as written, against a live stack (from the
repository's root, where the example files are), like docs/client.md's (test_client_docs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli.api_harness import ServedApi
from tests.mahsm.test_client_docs import environment_without_mahsm, pointed_at, run_example

ROOT = Path(__file__).parents[2]
BLOCKS = re.findall(
    r"^```python\n(.*?)^```", (ROOT / "docs/pipelines.md").read_text(), re.DOTALL | re.MULTILINE
)


def test_the_page_has_its_examples() -> None:
    # The file API, the builder, the client.
    assert len(BLOCKS) == 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
async def test_the_example_runs_as_written(api: ServedApi, tmp_path: Path, index: int) -> None:
    script = tmp_path / f"example_{index}.py"
    script.write_text(pointed_at(BLOCKS[index], api))
    env = environment_without_mahsm()
    returncode, stdout, stderr = await run_example(script, env, cwd=ROOT)
    assert returncode == 0, f"{stdout}\n{stderr}"
    if "run_pipeline" in BLOCKS[index]:
        assert "completed Dear Ada," in stdout
