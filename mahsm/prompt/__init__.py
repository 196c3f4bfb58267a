"""Prompt artifacts: what a DSPy program learned, versioned in Postgres, loaded by name.

    ref = await mahsm.prompt.save(program, "triage", tools=["calculator"], pool=pool)
    program = await mahsm.prompt.load("triage", 1, tools=["calculator"], pool=pool)

`pool` is an asyncpg pool on MAHSM's database; without it, one is opened on
`MAHSM_DATABASE_URL` for the call. See docs/dspy.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg

from mahsm.prompt.artifact import (
    ArtifactNotFound,
    PromptValidationError,
    ToolLike,
    body,
    check_tools,
    instructions_of,
    rebuild,
)
from mahsm.prompt.store import (
    ArtifactRef,
    ArtifactStore,
    ArtifactSummary,
    export_file,
    parse_ref,
    read_file,
)

__all__ = [
    "ArtifactNotFound",
    "ArtifactRef",
    "ArtifactStore",
    "ArtifactSummary",
    "PromptValidationError",
    "export",
    "import_file",
    "instructions_of",
    "load",
    "parse_ref",
    "save",
]


async def save(
    program: Any,
    name: str,
    *,
    tools: Iterable[ToolLike] = (),
    model: str | None = None,
    pool: asyncpg.Pool | None = None,
) -> ArtifactRef:
    """Save `program`'s state as the next version of `name` (same content: same version)."""
    content = body(program, tools, model)
    async with _store(pool) as store:
        return await store.save(name, content)


async def load(
    name: str,
    version: int | None = None,
    *,
    tools: Iterable[ToolLike] | None = None,
    program: Any = None,
    pool: asyncpg.Pool | None = None,
) -> Any:
    """The saved program (or `program` with the saved state loaded into it).

    Raises:
        ArtifactNotFound: no such name or version.
        PromptValidationError: `tools` differ from the saved tool schemas (every mismatch).
    """
    async with _store(pool) as store:
        artifact = await store.get(name, version)
    if tools is not None:
        check_tools(f"{name}@{artifact['version']}", artifact["tools"], tools)
    spec = artifact["program"]
    target = program if program is not None else rebuild(spec)
    target.load_state(spec["state"])
    return target


async def export(
    name: str, version: int | None, directory: Path, *, pool: asyncpg.Pool | None = None
) -> Path:
    """Write the artifact to `directory/NAME_vN.json` (atomically)."""
    async with _store(pool) as store:
        return export_file(await store.get(name, version), directory)


async def import_file(
    path: Path, *, name: str | None = None, pool: asyncpg.Pool | None = None
) -> ArtifactRef:
    """Store an exported file as a version of its name (or `name`); same content: same one."""
    found, content = read_file(path)
    async with _store(pool) as store:
        return await store.save(name or found, content)


@asynccontextmanager
async def _store(pool: asyncpg.Pool | None) -> AsyncIterator[ArtifactStore]:
    if pool is not None:
        yield ArtifactStore(pool)
        return
    from mahsm.db.pool import create_pool
    from mahsm.settings import get_settings

    url = get_settings().database_url
    if url is None:
        raise RuntimeError(
            "no database: pass pool=..., or set MAHSM_DATABASE_URL to MAHSM's Postgres"
        )
    own = await create_pool(url.get_secret_value(), max_size=2)
    try:
        yield ArtifactStore(own)
    finally:
        await own.close()
