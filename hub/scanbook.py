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

A blob durable in the data folder's own blob store is the exception (``add_held_listed``):
the file under its hash is the truth for it, and every start lists again a file the table
lacks (``HubScans.load``), so it is held in memory at once and its row goes into the next
group commit, which nobody waits for: an upload's answer costs no fsync of hub.db.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from hub.protocol.blobsync import HeldBlob, ScanIndex, ScanTally

log = logging.getLogger(__name__)

Queue = Callable[[str, int, str, int, Callable[[], None]], "asyncio.Future[None]"]


class _Facts(Protocol):
    @property
    def facts(self) -> Sequence[Any]: ...


class SqliteScanBook:
    """``ScanBook`` over ``store.facts`` and the ``blobs`` table (see the module docstring).
    ``write(digest, size, kind, now, then)`` queues the row for the store's next committed
    transaction and returns a future done after its COMMIT; ``then`` (this book's memory
    update) runs right after that COMMIT, on the writer."""

    def __init__(self, store: _Facts, held: dict[str, HeldBlob], write: Queue):
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
        then = lambda: self.tally.arrived(digest, size, kind)  # noqa: E731
        await asyncio.shield(self._write(digest, size, kind, now, then))
        return True

    def add_held_listed(self, digest: str, size: int, kind: str, now: int) -> bool:
        """``add_held`` for a blob durable in the data folder's blob store, which every start
        lists again (see the module docstring): held in memory now, its row written by the
        next group commit, not waited for. A failed write is logged: the blob stays in the
        folder, and the next start lists it. False when it already was held."""
        if digest in self.tally.held:
            return False
        self.tally.arrived(digest, size, kind)
        self._write(digest, size, kind, now, _nothing).add_done_callback(_log_unlisted(digest))
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


def _nothing() -> None:
    return None


def _log_unlisted(digest: str) -> Callable[[asyncio.Future[None]], None]:
    def logged(done: asyncio.Future[None]) -> None:
        exc = None if done.cancelled() else done.exception()
        if done.cancelled() or exc is not None:
            log.warning("scan %s is stored but could not be listed in hub.db (%s); the next "
                        "start lists it from the blob folder", digest,
                        exc or "the hub stopped")  # fmt: skip

    return logged
