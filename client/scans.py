"""Scanned pages on the laptop: the blob store in the data folder, and scan file paths in
entries.

Pages are kept in ``DATA/blobs/`` by ``hub.shared.blobs.BlobStore`` (SHA-256 addressed, checked
by content). An entry names its pages by hash (docs/entry-format.md); ``c1client enter`` also
accepts a file path in ``scans``: ``resolve`` stores that file and puts its hash in its place.
A relative path is taken from the folder of the input file (from the current folder for stdin).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hub.shared.blobs import BlobStore, is_hash
from hub.shared.errors import BlobError

BLOB_DIR = "blobs"


def blob_store(data_dir: Path) -> BlobStore:
    return BlobStore(data_dir / BLOB_DIR)


class BadScanPath(Exception):
    """A scan file path in an entry that cannot be stored (its message says which and why)."""


def resolve(value: Any, base: Path, blobs: BlobStore) -> Any:
    """``value`` (an entry as read) with every scan file path replaced by the stored file's
    hash, relative paths taken from ``base``; BadScanPath if a file cannot be stored. Hashes
    and other values pass as they are (``entry.parse`` judges them)."""
    if not isinstance(value, dict):
        return value
    scans = value.get("scans")
    if not isinstance(scans, list) or all(not isinstance(s, str) or is_hash(s) for s in scans):
        return value
    out = []
    for i, s in enumerate(scans):
        if not isinstance(s, str) or is_hash(s):
            out.append(s)
            continue
        path = Path(s).expanduser()
        try:
            out.append(blobs.put_file(path if path.is_absolute() else base / path).hash)
        except BlobError as exc:
            raise BadScanPath(f"scans[{i}] {s!r}: {exc.message}") from None
    return {**value, "scans": out}
