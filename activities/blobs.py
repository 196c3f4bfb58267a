"""The claim-check blob store: large values live in Postgres and travel as `BlobRef`s."""

from __future__ import annotations

import hashlib

import asyncpg

from mahsm.contracts.task import BlobRef


class BlobStore:
    """Content-addressed blobs in the `blobs` table; writing the same bytes twice is a no-op."""

    def __init__(self, pool: asyncpg.Pool, *, threshold_bytes: int = 128 * 1024) -> None:
        self.pool = pool
        self.threshold_bytes = threshold_bytes

    async def put(self, content: bytes) -> BlobRef:
        """Store `content`; its id is its SHA-256, so retries and duplicates cost nothing."""
        digest = hashlib.sha256(content).hexdigest()
        await self.pool.execute(
            "INSERT INTO blobs (id, sha256, size_bytes, content) VALUES ($1, $1, $2, $3)"
            " ON CONFLICT (id) DO NOTHING",
            digest,
            len(content),
            content,
        )
        return BlobRef(blob_id=digest, size_bytes=len(content), sha256=digest)

    async def get(self, ref: BlobRef) -> bytes:
        """The bytes behind `ref`; a missing blob is an error naming it."""
        content = await self.pool.fetchval("SELECT content FROM blobs WHERE id = $1", ref.blob_id)
        if content is None:
            raise LookupError(f"blob {ref.blob_id} not found")
        return bytes(content)

    async def get_text(self, ref: BlobRef) -> str:
        """The UTF-8 text behind `ref`."""
        return (await self.get(ref)).decode("utf-8")

    async def offload_text(self, text: str) -> tuple[str | None, BlobRef | None]:
        """(text, None) when small enough to travel inline, else (None, ref)."""
        encoded = text.encode("utf-8")
        if len(encoded) <= self.threshold_bytes:
            return text, None
        return None, await self.put(encoded)
