"""Where a hub keeps scans (DESIGN §3 "Scans", §4b): the filesystem store in its data folder
(the default) or an S3-compatible object store (``--blobs s3://BUCKET?endpoint=URL``).

Both are ``Blobs`` (the shape of ``hub.shared.s3blobs.AsyncBlobStore``, plus ``close``):
content-addressed by SHA-256, a blob exists under its hash only once all its bytes are there
and hash to it. ``open_blobs`` picks one from the setting; ``LocalBlobs`` is the filesystem
store (``hub.shared.blobs.BlobStore``) behind the same async interface, its file work on a
worker thread. The object store's client (aiobotocore, the ``national`` extra) is imported
only when ``--blobs`` names one: rooms never load it. Whatever moves scans (the transfer
endpoints) uses the store the hub was started with (``HubService.blobs``). Credentials for
the object store come from the usual AWS environment variables or files, never the URL.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

from hub.errors import HubError
from hub.shared.blobs import CHUNK, BlobInfo, BlobStore, BlobWriter, fsync_dir

log = logging.getLogger(__name__)

BLOBS_DIR = "blobs"


class Held(Protocol):
    """What a store says about a blob it holds (both stores' ``BlobInfo`` have it)."""

    @property
    def hash(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def new(self) -> bool: ...


class Writer(Protocol):
    async def write(self, chunk: bytes) -> None: ...
    async def commit(self) -> Held: ...
    async def abort(self) -> None: ...


class Blobs(Protocol):
    """A content-addressed scan store the hub opens at start and closes at stop."""

    async def has(self, digest: str) -> bool: ...
    async def info(self, digest: str) -> Held | None: ...
    def writer(self, expect: str | None = None) -> Writer: ...
    async def adopt(self, path: Path, digest: str) -> bool:
        """Keep the whole, verified blob in the file at ``path`` under ``digest`` and remove
        the file; False when the blob was already held."""
        ...

    def iter_chunks(
        self, digest: str, size: int = ..., start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """Bytes ``start`` .. ``end`` (inclusive; None: to the end) of a held blob."""
        ...

    async def close(self) -> None: ...


class _LocalWriter:
    def __init__(self, w: BlobWriter):
        self._w = w

    async def write(self, chunk: bytes) -> None:
        await asyncio.to_thread(self._w.write, chunk)

    async def commit(self) -> BlobInfo:
        return await asyncio.to_thread(self._w.commit)

    async def abort(self) -> None:
        await asyncio.to_thread(self._w.abort)


class LocalBlobs:
    """The filesystem blob store as an ``AsyncBlobStore``."""

    def __init__(self, store: BlobStore):
        self.store = store

    async def has(self, digest: str) -> bool:
        return await asyncio.to_thread(self.store.has, digest)

    async def info(self, digest: str) -> BlobInfo | None:
        return await asyncio.to_thread(self.store.info, digest)

    def writer(self, expect: str | None = None) -> _LocalWriter:
        return _LocalWriter(self.store.writer(expect))

    async def adopt(self, path: Path, digest: str) -> bool:
        return await asyncio.to_thread(self.adopt_now, path, digest)

    def adopt_now(self, path: Path, digest: str) -> bool:
        """``adopt``, on the calling thread (a worker thread already)."""
        dest = self.store.path(digest)
        if dest.exists():
            path.unlink(missing_ok=True)
            return False
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, dest)
        fsync_dir(dest.parent)
        return True

    async def iter_chunks(
        self, digest: str, size: int = CHUNK, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        f = await asyncio.to_thread(self.store.open, digest)
        try:
            if start:
                f.seek(start)
            left = None if end is None else end - start + 1
            while left is None or left > 0:
                n = size if left is None else min(size, left)
                chunk = await asyncio.to_thread(f.read, n)
                if not chunk:
                    break
                if left is not None:
                    left -= len(chunk)
                yield chunk
        finally:
            f.close()

    async def close(self) -> None:
        return None


async def open_blobs(data_dir: Path, url: str | None) -> Blobs:
    """The object store at ``url`` (``s3://...``; its bucket created if it does not exist),
    or the filesystem store in ``data_dir``. An object store that cannot be reached at start,
    or cannot answer now (throttling, 5xx, another receiver's create of the bucket under way),
    is logged: the hub runs, and refuses scans (503) until it can be reached."""
    if url:
        from botocore.exceptions import ClientError

        from hub.shared.s3blobs import S3BlobError, S3BlobStore  # the national extra

        s3 = await S3BlobStore.open(url)
        try:
            if await s3.ensure_bucket():
                log.warning("created bucket %r in the object store %s", s3.loc.bucket,
                            s3.loc.endpoint or "(AWS)")  # fmt: skip
        except S3BlobError as exc:
            if exc.code != "no_bucket":  # unreachable now: scans are refused until it is back
                log.warning("%s: scans are refused until it can be reached", exc)
            else:
                await s3.close()
                raise HubError(f"--blobs: {exc}") from None
        except ClientError as exc:  # may not ask about the bucket: it is used as it is
            log.warning("could not check that bucket %r exists (%s); using it as it is",
                        s3.loc.bucket, exc)  # fmt: skip
        return s3
    root = data_dir / BLOBS_DIR
    await asyncio.to_thread(root.mkdir, mode=0o700, exist_ok=True)
    return LocalBlobs(BlobStore(root))
