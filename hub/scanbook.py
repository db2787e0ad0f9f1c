"""The SQLite store's index of scans (``hub.storage.ScanBook``; DESIGN §3 "Scans").

Which hashes are named: ``hub.protocol.blobsync.ScanIndex``, fed from the store's per-record
facts as they are committed (they are in memory already, so naming costs nothing more).
Which blobs are held: the ``blobs`` table of hub.db, read once at open into a dict; a blob is
added by one transaction on the store's writer once it is durable in the blob store, and the
dict changes only after that COMMIT. One process owns hub.db, so the dict is the truth.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from hub.protocol import blobsync
from hub.protocol.blobsync import ScanIndex
from hub.storage import HeldBlob, ScanSummary


class _Facts(Protocol):
    @property
    def facts(self) -> Sequence[Any]: ...


class SqliteScanBook:
    """``ScanBook`` over ``store.facts`` and the ``blobs`` table (see the module docstring).
    ``write(digest, size, kind, now)`` inserts the row in one committed transaction."""

    def __init__(
        self,
        store: _Facts,
        held: dict[str, HeldBlob],
        write: Callable[[str, int, str, int], Awaitable[None]],
    ):
        self.store = store
        self.held_blobs = held
        self._write = write
        self.index = ScanIndex()
        self._fed: Sequence[Any] | None = None
        self._summary: tuple[tuple[int, ...], ScanSummary] | None = None

    def refresh(self) -> ScanIndex:
        """The index, fed with the records committed since the last call (rebuilt when the
        store swapped its memory after a failed commit)."""
        facts = self.store.facts
        if facts is not self._fed or len(facts) < self.index.seen:
            self.index, self._fed = ScanIndex(), facts
        for f in facts[self.index.seen :]:
            self.index.add(f.dev, f.seq, f.facts.key[2], f.facts.scans)
        return self.index

    async def lookup(self, hashes: Sequence[str]) -> dict[str, HeldBlob | None]:
        index = self.refresh()
        return {h: self.held_blobs.get(h) for h in hashes if index.is_named(h)}

    async def held(self, digest: str) -> HeldBlob | None:
        return self.held_blobs.get(digest)

    async def add_held(self, digest: str, size: int, kind: str, now: int) -> bool:
        if digest in self.held_blobs:
            return False
        await self._write(digest, size, kind, now)
        self.held_blobs[digest] = HeldBlob(size, kind)
        return True

    async def summary(self, upstream: Mapping[str, int] | None, limit: int) -> ScanSummary:
        return self.summary_now(upstream, limit)

    def summary_now(self, upstream: Mapping[str, int] | None, limit: int) -> ScanSummary:
        """``summary``, computed here (in memory; recomputed only when something changed)."""
        facts = self.store.facts
        key = (
            id(facts),
            len(facts),
            len(self.held_blobs),
            -1 if upstream is None else len(upstream),
        )
        if self._summary is None or self._summary[0] != key:
            held = {h: b.size for h, b in self.held_blobs.items()}
            counts = blobsync.scan_counts(
                self.refresh().named, held, None if upstream is None else set(upstream)
            )
            pending = blobsync.scan_pending(((f.facts.key, f.facts.scans) for f in facts), held)
            self._summary = (key, ScanSummary(counts, len(pending), pending[:limit]))
        return self._summary[1]

    async def newly_confirmed(self, confirmed: Mapping[int, int]) -> list[str]:
        return self.refresh().newly_confirmed(confirmed)

    def follow_upstream(self, upstream: Mapping[str, int]) -> None:
        """Nothing: the cursor lives in ``index`` (memory), rebuilt from the first entry at
        start."""


def holds_exactly(rows: Sequence[Sequence[Any]]) -> dict[str, HeldBlob]:
    """The held blobs from the ``blobs`` table's (hash, size, kind) rows."""
    return {str(h): HeldBlob(int(size), str(kind)) for h, size, kind in rows}
