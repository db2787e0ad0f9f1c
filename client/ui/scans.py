"""Scanned pages: uploads streamed from the browser into the blob store, the scanner's folder
(the inbox) and what the page shows of a page it holds."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from hub.shared.blobs import BlobInfo, BlobStore

from .drafts import UiStore
from .errors import NotFound

MAX_INBOX = 200


class Scans:
    def __init__(self, blobs: BlobStore, ui: UiStore, folder: Path | None):
        self.blobs = blobs
        self.ui = ui
        self.folder = folder

    def view(self, digest: str) -> dict[str, Any]:
        """A page by its hash, whether this laptop holds it or not."""
        info = self.blobs.info(digest) if self.blobs.has(digest) else None
        return {
            "hash": digest,
            "kind": info.kind if info else None,
            "size": info.size if info else None,
            "held": info is not None,
        }

    def has(self, digest: str) -> bool:
        return self.blobs.has(digest)

    async def upload(self, chunks: AsyncIterator[bytes]) -> dict[str, Any]:
        """Store a page streamed from the browser (never whole in memory)."""
        w = await asyncio.to_thread(self.blobs.writer)
        try:
            async for chunk in chunks:
                await asyncio.to_thread(w.write, chunk)
            info = await asyncio.to_thread(w.commit)
        except BaseException:
            w.abort()
            raise
        return _blob_view(info)

    async def inbox(self) -> list[dict[str, Any]]:
        """Files in the scanner's folder, newest first; ``used`` names the entry that has it."""
        folder = self.folder
        if folder is None:
            return []
        files = await asyncio.to_thread(_list_folder, folder)
        used = await self.ui.used_scans()
        out = []
        for path, size, mtime_ns in files[:MAX_INBOX]:
            digest = await self.ui.inbox_hash(str(path), size, mtime_ns)
            out.append(
                {
                    "name": path.name,
                    "size": size,
                    "mtime": mtime_ns / 1e9,
                    "hash": digest,
                    "used": used.get(digest) if digest else None,
                }
            )
        return out

    async def take_inbox(self, name: str) -> dict[str, Any]:
        """Copy a file of the scanner's folder into the blob store."""
        folder = self.folder
        if folder is None or not name or "/" in name or name.startswith("."):
            raise NotFound("no such file in the scan folder", "berkas tidak ada di folder pindaian")
        path = folder / name
        try:
            st = path.stat()
        except OSError:
            raise NotFound(
                f"{name} is no longer in the scan folder", f"{name} tidak ada lagi di folder"
            ) from None
        info = await asyncio.to_thread(self.blobs.put_file, path)
        await self.ui.remember_inbox(str(path), st.st_size, st.st_mtime_ns, info.hash)
        return _blob_view(info)


def _blob_view(info: BlobInfo) -> dict[str, Any]:
    return {"hash": info.hash, "kind": info.kind, "size": info.size, "held": True}


def _list_folder(folder: Path) -> list[tuple[Path, int, int]]:
    out = []
    with os.scandir(folder) as it:
        for de in it:
            if de.name.startswith(".") or not de.is_file():
                continue
            st = de.stat()
            out.append((Path(de.path), st.st_size, st.st_mtime_ns))
    out.sort(key=lambda x: x[2], reverse=True)
    return out
