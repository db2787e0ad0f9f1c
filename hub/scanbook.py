"""The SQLite store's index of scans (``hub.storage.ScanBook``; DESIGN §3 "Scans").

One ``hub.protocol.blobsync.ScanTally`` is the whole of it, in memory, and this book is its
only owner (``HubScans`` reads the status figures off the same object): which hashes are
named (its ``index``, fed from the store's per-record facts as they are committed: they are
in memory already, so naming costs nothing more), which blobs are held (its ``held``, hash ->
size and kind: the ``blobs`` table of hub.db, read once at open), and the figures of the
status, kept event by event. A blob is added by one transaction on the store's writer once it
is durable in the blob store, and the tally changes only after that COMMIT, on the writer
(whatever becomes of the caller meanwhile). One process owns
hub.db, so the tally is the truth.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from hub.protocol.blobsync import HeldBlob, ScanIndex, ScanTally


class _Facts(Protocol):
    @property
    def facts(self) -> Sequence[Any]: ...


class SqliteScanBook:
    """``ScanBook`` over ``store.facts`` and the ``blobs`` table (see the module docstring).
    ``write(digest, size, kind, now, then)`` inserts the row in one committed transaction and
    calls ``then`` (this book's memory update) right after its COMMIT, on the writer."""

    def __init__(
        self,
        store: _Facts,
        held: dict[str, HeldBlob],
        write: Callable[[str, int, str, int, Callable[[], None]], Awaitable[None]],
    ):
        self.store = store
        self._write = write
        self.tally = ScanTally(False, held)
        self._fed: Sequence[Any] | None = None

    @property
    def index(self) -> ScanIndex:
        return self.tally.index

    @property
    def held_blobs(self) -> dict[str, HeldBlob]:
        return self.tally.held

    def refresh(self) -> ScanTally:
        """The tally, fed with the records committed since the last call: each costs its
        pages (``ScanTally.add``). Rebuilt (over the same held blobs and what upstream holds)
        only when the store swapped its memory after a failed commit."""
        facts = self.store.facts
        t = self.tally
        if facts is not self._fed or len(facts) < t.index.seen:
            t = self.tally = ScanTally(t.root, t.held, t.upstream)
            self._fed = facts
        for f in facts[t.index.seen :]:
            t.add(f.dev, f.seq, f.facts.key, f.facts.scans)
        return t

    async def lookup(self, hashes: Sequence[str]) -> dict[str, HeldBlob | None]:
        t = self.refresh()
        named, held = t.index.named, t.held
        return {h: held.get(h) for h in hashes if h in named}

    async def held(self, digest: str) -> HeldBlob | None:
        return self.tally.held.get(digest)

    async def add_held(self, digest: str, size: int, kind: str, now: int) -> bool:
        if digest in self.tally.held:
            return False
        # the tally changes on the writer, right after the COMMIT: a caller cancelled while it
        # waits (its request dropped) leaves memory in step with hub.db all the same
        await self._write(digest, size, kind, now, lambda: self.tally.arrived(digest, size, kind))
        return True

    async def newly_confirmed(self, confirmed: Mapping[int, int]) -> list[str]:
        return self.refresh().index.newly_confirmed(confirmed)

    def follow_upstream(self, upstream: Mapping[str, int]) -> None:
        """Nothing: the cursor lives in ``index`` (memory), rebuilt from the first entry at
        start."""

    def upstream_took(self, digest: str) -> None:
        """Nothing: the tally learns it from ``HubScans.upstream_holds``."""


def holds_exactly(rows: Sequence[Sequence[Any]]) -> dict[str, HeldBlob]:
    """The held blobs from the ``blobs`` table's (hash, size, kind) rows."""
    return {str(h): HeldBlob(int(size), str(kind)) for h, size, kind in rows}
