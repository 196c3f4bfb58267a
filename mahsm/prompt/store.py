"""Prompt artifacts in Postgres (`prompt_artifacts`, migration 0007) and as JSON files."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import BaseModel

from mahsm.prompt.artifact import FORMAT, ArtifactNotFound, content_hash


class ArtifactRef(BaseModel):
    """A stored artifact version."""

    name: str
    version: int
    content_hash: str
    created_at: datetime

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


class ArtifactSummary(BaseModel):
    """One artifact name: its latest version and how many there are."""

    name: str
    latest: int
    versions: int
    updated_at: datetime


def parse_ref(ref: str) -> tuple[str, int | None]:
    """`name@3` -> ("name", 3); `name` -> ("name", None): its latest."""
    name, _, version = ref.partition("@")
    return name, int(version) if version else None


class ArtifactStore:
    """Saves (immutable, numbered per name) and reads artifacts."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def save(self, name: str, content: dict[str, Any]) -> ArtifactRef:
        """Store `content` as the next version of `name`; the same content: its version."""
        digest = content_hash(content)
        async with self._pool.acquire() as connection, connection.transaction():
            # One writer per name at a time: versions are consecutive, never duplicated.
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", name)
            row = await connection.fetchrow(
                "SELECT name, version, content_hash, created_at FROM prompt_artifacts"
                " WHERE name = $1 AND content_hash = $2",
                name,
                digest,
            )
            if row is None:
                row = await connection.fetchrow(
                    "INSERT INTO prompt_artifacts (name, version, content_hash, artifact)"
                    " SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3 FROM prompt_artifacts"
                    " WHERE name = $1 RETURNING name, version, content_hash, created_at",
                    name,
                    digest,
                    content,
                )
        assert row is not None
        return ArtifactRef(**dict(row))

    async def get(self, name: str, version: int | None = None) -> dict[str, Any]:
        """The artifact (its content plus name, version, content_hash, created_at).

        Raises:
            ArtifactNotFound: naming what exists.
        """
        row = await self._pool.fetchrow(
            "SELECT name, version, content_hash, created_at, artifact FROM prompt_artifacts"
            " WHERE name = $1 AND ($2::int IS NULL OR version = $2)"
            " ORDER BY version DESC LIMIT 1",
            name,
            version,
        )
        if row is None:
            versions = await self.versions(name)
            if not versions:
                raise ArtifactNotFound(
                    f"no prompt artifact named '{name}'; list them with `mahsm artifacts list`"
                )
            raise ArtifactNotFound(
                f"prompt artifact '{name}' has no version {version};"
                f" versions: {', '.join(str(v) for v in versions)}"
            )
        return {
            **row["artifact"],
            "name": row["name"],
            "version": row["version"],
            "content_hash": row["content_hash"],
            "created_at": row["created_at"].isoformat(),
        }

    async def versions(self, name: str) -> list[int]:
        """The versions of `name`, oldest first."""
        rows = await self._pool.fetch(
            "SELECT version FROM prompt_artifacts WHERE name = $1 ORDER BY version", name
        )
        return [r["version"] for r in rows]

    async def list(self) -> list[ArtifactSummary]:
        """Every artifact name with its latest version."""
        rows = await self._pool.fetch(
            "SELECT name, MAX(version) AS latest, COUNT(*) AS versions,"
            " MAX(created_at) AS updated_at FROM prompt_artifacts GROUP BY name ORDER BY name"
        )
        return [ArtifactSummary(**dict(r)) for r in rows]


def export_file(artifact: dict[str, Any], directory: Path) -> Path:
    """Write `NAME_vN.json` into `directory` atomically (a reader never sees half a file)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{artifact['name']}_v{artifact['version']}.json"
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(artifact, out, indent=2, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_file(path: Path) -> tuple[str, dict[str, Any]]:
    """The name and content of an exported artifact file.

    Raises:
        ValueError: not an artifact file, or its content does not match its hash.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable JSON file ({error})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or "name" not in data:
        raise ValueError(f"{path}: not a prompt artifact (expected format {FORMAT!r})")
    name = str(data["name"])
    content = {k: v for k, v in data.items() if k in ("format", "program", "tools", "model")}
    content["dependencies"] = data.get("dependencies", {})
    if "content_hash" in data and data["content_hash"] != content_hash(content):
        raise ValueError(f"{path}: its content does not match its content_hash (edited?)")
    return name, content
