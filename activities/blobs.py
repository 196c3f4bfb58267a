"""The claim-check blob store: large values live in Postgres and travel as `BlobRef`s."""

from __future__ import annotations

import hashlib

import asyncpg
from temporalio.exceptions import ApplicationError

from mahsm import metrics
from mahsm.contracts.task import BlobRef
from mahsm.settings import Settings

DEFAULT_MAX_BYTES = 32 * 1024 * 1024
"""Default of `MAHSM_BLOB_MAX_BYTES`."""


class BlobTooLargeError(ApplicationError):
    """A value over the store's size cap. Non-retryable: a retry would be just as large."""

    def __init__(self, size: int, max_bytes: int) -> None:
        super().__init__(
            f"blob of {size} bytes is over the blob store's cap of {max_bytes} bytes."
            " Fix: produce less (tool results are cut at MAHSM_TOOL_OUTPUT_MAX_BYTES), or"
            " raise MAHSM_BLOB_MAX_BYTES",
            {"size_bytes": size, "max_bytes": max_bytes},
            type="BlobTooLarge",
            non_retryable=True,
        )
        self.size = size
        self.max_bytes = max_bytes


class BlobStore:
    """Content-addressed blobs in the `blobs` table; writing the same bytes twice is a no-op.

    Args:
        pool: The MAHSM database.
        threshold_bytes: Values larger than this travel by reference (`claim_check_bytes`).
        max_bytes: Largest value accepted (`blob_max_bytes`); `put` refuses larger ones.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        threshold_bytes: int = 128 * 1024,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.pool = pool
        self.threshold_bytes = threshold_bytes
        self.max_bytes = max_bytes

    @classmethod
    def from_settings(cls, pool: asyncpg.Pool, settings: Settings) -> BlobStore:
        """The store of a worker: `claim_check_bytes` and `blob_max_bytes` from its settings."""
        return cls(
            pool, threshold_bytes=settings.claim_check_bytes, max_bytes=settings.blob_max_bytes
        )

    async def put(self, content: bytes) -> BlobRef:
        """Store `content`; its id is its SHA-256, so retries and duplicates cost nothing.

        Raises:
            BlobTooLargeError: `content` is larger than `max_bytes`.
        """
        if len(content) > self.max_bytes:
            raise BlobTooLargeError(len(content), self.max_bytes)
        digest = hashlib.sha256(content).hexdigest()
        status = await self.pool.execute(
            "INSERT INTO blobs (id, sha256, size_bytes, content) VALUES ($1, $1, $2, $3)"
            " ON CONFLICT (id) DO NOTHING",
            digest,
            len(content),
            content,
        )
        if status == "INSERT 0 1":  # a duplicate stored nothing
            metrics.BLOB_BYTES_OFFLOADED.inc(len(content))
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
