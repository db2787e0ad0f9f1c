"""An acknowledged upload chunk is durable (docs/protocol.md "Scans"): before the hub answers a
chunk, that chunk's file was fsynced; before it answers the chunk that completes a scan, the
scan's file was fsynced once and the folder it was renamed into was fsynced. The real
``os.fsync`` runs; the test only notes which file each call was for."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_blobs import ScanHub, page, push_with_scans, sha
from .test_blobs import shub as shub  # the fixture


@pytest.fixture
def fsynced(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The path of every file or folder fsynced, in order."""
    seen: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    yield seen


async def test_each_acknowledged_chunk_was_fsynced_and_the_last_once(
    shub: ScanHub,
    fsynced: list[str],
) -> None:
    data = page(4, 12_000)
    digest = sha(data)
    await push_with_scans(shub, [[data]])
    tmp = str(shub.scans.blobs.upload_path(digest))
    final = shub.scans.blobs.path(digest)

    fsynced.clear()
    status, reply = await shub.put(digest, data[:5000], 0, len(data))
    assert (status, reply) == (200, {"offset": 5000, "stored": 0})
    assert fsynced == [tmp]

    fsynced.clear()
    status, reply = await shub.put(digest, data[5000:], 5000, len(data))
    assert (status, reply) == (200, {"offset": len(data), "stored": 1})
    # the file once (still under its temporary name), then the folder it was renamed into
    assert fsynced == [tmp, str(final.parent)]
    assert Path(final).read_bytes() == data
