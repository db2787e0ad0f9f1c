"""The scans a hub holds and receives (DESIGN §3 "Scans"; docs/protocol.md "Scans").

``HubScans`` owns the hub's blob store (``DATA/blobs``, ``hub.shared.blobs.BlobStore``) and
what the hub knows about it: the size of every held blob (listed once at start, on a worker
thread), the hashes named by the entries held (``hub.protocol.blobsync.ScanIndex``, fed from
the store's facts as they are committed), and the blobs upstream is known to hold (learned by
the forwarder from upstream's answers; kept in memory, so after a restart they are asked about
again). It answers the lacking question, appends upload chunks (one blob at a time per hash,
each chunk fsynced before its answer, the blob renamed into place only when its hash matches)
and opens blobs for reading. Partial uploads no chunk extended for ``partial_max_age`` are
removed (``expire``: at start, then from ``run_expiry``, a task the node runs), never one whose
chunk is being appended. The decisions are ``hub.protocol.blobsync``'s.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hub.errors import BlobRefused, DiskFull
from hub.protocol import blobsync
from hub.protocol.blobsync import ScanCounts, ScanIndex, ScanTally
from hub.shared.blobs import (
    PARTIAL_MAX_AGE,
    UPLOAD_SUFFIX,
    BlobInfo,
    BlobStore,
    BlobWriter,
    is_hash,
    sniff,
)
from hub.shared.errors import BlobError

log = logging.getLogger(__name__)

BLOB_DIR = "blobs"
MAX_OPEN = 32  # partial uploads kept open between chunks (others are read back when resumed)


class FactsSource(Protocol):
    """What the scans need of the hub's store (``hub.store.HubStore`` has it)."""

    @property
    def facts(self) -> Sequence[Any]: ...


@dataclass(slots=True)
class Counters:
    """Cumulative, for ``/metrics``."""

    received_blobs: int = 0
    received_bytes: int = 0
    sent_blobs: int = 0
    sent_bytes: int = 0


class HubScans:
    def __init__(
        self,
        data_dir: Path,
        store: FactsSource,
        *,
        root: bool,
        max_size: int = 0,
        partial_max_age: float = PARTIAL_MAX_AGE,
    ):
        self.blobs = BlobStore(data_dir / BLOB_DIR, **({"max_size": max_size} if max_size else {}))
        self.store = store
        self.root = root
        self.partial_max_age = partial_max_age
        self.counters = Counters()
        self.tally = ScanTally(root)  # held, upstream, what is named and the status figures
        self._fed: Sequence[Any] | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._open: dict[str, BlobWriter] = {}  # partial uploads between their chunks

    @property
    def held(self) -> Mapping[str, int]:
        """hash -> size of every blob held here."""
        return self.tally.held

    @property
    def upstream(self) -> Set[str]:
        """The blobs upstream is known to hold."""
        return self.tally.upstream

    @property
    def index(self) -> ScanIndex:
        return self.tally.index

    def upstream_holds(self, digest: str) -> None:
        """Upstream said it holds ``digest`` (the forwarder learnt it from its answer)."""
        self.tally.upstream_holds(digest)

    def close(self) -> None:
        """Close the partial uploads kept open (they stay on disk, to be resumed)."""
        while self._open:
            self._open.popitem()[1].close_keep()

    async def load(self) -> None:
        """List the held blobs and index the entries held (on a worker thread: before the
        hub serves, nothing else touches them); drop what a crash left in ``tmp/`` and the
        partial uploads abandoned for longer than ``partial_max_age``."""
        for digest, size in (await asyncio.to_thread(_list_blobs, self.blobs.root)).items():
            self.tally.arrived(digest, size)
        await asyncio.to_thread(self.refresh)  # every entry once; from now on only new ones
        await asyncio.to_thread(self.blobs.clean_tmp)
        await self.expire()
        log.info("%d scans held in %s", len(self.held), self.blobs.root)

    # -- partial uploads nobody finishes -----------------------------------------------------

    async def expire(self) -> int:
        """Remove the partial uploads not extended for ``partial_max_age`` seconds (their
        sender gone for good; one that comes back starts that scan again from byte 0). Never
        one whose chunk is being appended (its lock is held) or one a chunk extended since
        the listing (its age is checked again, on the loop, just before it goes). Returns
        how many were removed."""
        stale = await asyncio.to_thread(self.blobs.stale_partials, self.partial_max_age)
        n = 0
        for path in stale:
            digest = path.name.removesuffix(UPLOAD_SUFFIX)
            if digest in self._locks:  # a chunk of it is on its way in
                continue
            w = self._open.pop(digest, None)
            if w is not None:
                w.close_keep()
            if self.blobs.expire_one(path, self.partial_max_age) is not None:
                n += 1
        return n

    async def run_expiry(self) -> None:
        """``expire`` now and then while the hub runs (a quarter of ``partial_max_age``, at
        most hourly)."""
        every = expiry_interval(self.partial_max_age)
        while True:
            await asyncio.sleep(every)
            try:
                await self.expire()
            except OSError as exc:  # pragma: no cover - a disk error: try again next time
                log.warning("could not remove abandoned partial scans: %s", exc)

    # -- what is named -----------------------------------------------------------------------

    def refresh(self) -> ScanIndex:
        """The index, fed with the records committed since the last call: each costs its
        pages (``ScanTally.add``). Rebuilt from every record only when the store swapped its
        memory after a failed commit."""
        facts = self.store.facts
        if facts is not self._fed or len(facts) < self.tally.index.seen:
            self.tally = ScanTally(self.root, self.tally.held, self.tally.upstream)
            self._fed = facts
        t = self.tally
        for f in facts[t.index.seen :]:
            t.add(f.dev, f.seq, f.facts.key, f.facts.scans)
        return t.index

    def status(self, rate_bps: float, limit: int = 100) -> tuple[dict[str, Any], list[Any]]:
        """``scans`` of ``c1hub status`` (with ``eta_s`` at ``rate_bps``) and the first
        ``limit`` entries whose scans are pending: read off the tally, which every change
        keeps up to date at its own cost (nothing here walks every entry or page)."""
        c = self.counts()
        listed = [{"election": k[0], "form": k[1], "tps": k[2], "missing": m}
                  for k, m in self.tally.pending(limit)]  # fmt: skip
        out: dict[str, Any] = c.to_dict()
        out["entries_pending"] = self.tally.entries_pending
        out["eta_s"] = blobsync.eta_s(c.bytes_pending, rate_bps)
        return out, listed

    def metrics(self) -> dict[str, int]:
        """Gauges and counters for ``/metrics``."""
        c, k = self.counts(), self.counters
        return {**c.to_dict(), "received": k.received_blobs, "received_bytes": k.received_bytes,
                "sent": k.sent_blobs, "sent_bytes": k.sent_bytes}  # fmt: skip

    def counts(self) -> ScanCounts:
        self.refresh()
        return self.tally.counts()

    def state_of(self, digest: str) -> str:
        """``held``/``upstream``/``lacking``/``unknown`` as the lacking answer says it."""
        if digest in self.held:
            return blobsync.UPSTREAM if digest in self.upstream else blobsync.HELD
        return blobsync.LACKING if self.index.is_named(digest) else blobsync.UNKNOWN

    def lacking(self, hashes: Iterable[str]) -> dict[str, Any]:
        """The answer to a lacking question (``blobsync.lacking_reply``)."""
        self.refresh()
        out = []
        for h in hashes:
            st = self.state_of(h)
            off = self.blobs.upload_offset(h) if st == blobsync.LACKING else 0
            out.append((h, st, off))
        return blobsync.lacking_reply(out)

    # -- receiving ---------------------------------------------------------------------------

    async def put_chunk(self, digest: str, start: int, total: int, body: bytes) -> dict[str, Any]:
        """Append one upload chunk; the answer only once it is durable (and, for the last
        chunk, once the blob exists under its hash)."""
        self.refresh()
        lock = self._locks.setdefault(digest, asyncio.Lock())
        try:
            async with lock:
                return await self._put(digest, start, total, body)
        finally:
            if not lock.locked():
                self._locks.pop(digest, None)

    async def _put(self, digest: str, start: int, total: int, body: bytes) -> dict[str, Any]:
        offset = self.blobs.upload_offset(digest)
        verdict = blobsync.check_chunk(
            named=self.index.is_named(digest), held=digest in self.held, offset=offset,
            start=start, length=len(body), total=total, max_size=self.blobs.max_size,
        )  # fmt: skip
        if not verdict.ok:
            raise BlobRefused(verdict.code, verdict.reason, offset=verdict.offset)
        try:
            info = await asyncio.to_thread(self._append, digest, offset, body, verdict.last)
        except BlobError as exc:
            raise BlobRefused(_blob_code(exc.code), exc.message) from None
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(
                    "the hub's disk is full: scans cannot be stored; free space on the hub"
                ) from None
            raise
        self.counters.received_bytes += len(body)
        if info is None:
            return {"offset": verdict.offset, "stored": 0}
        self.tally.arrived(digest, info.size)
        self.counters.received_blobs += 1
        log.debug("received scan %s (%s, %d bytes)", digest, info.kind, info.size)
        return {"offset": info.size, "stored": 1}

    def _append(self, digest: str, offset: int, body: bytes, last: bool) -> BlobInfo | None:
        """Append ``body`` at ``offset`` and fsync (a failure leaves the file at ``offset``);
        on the last chunk, commit instead (one fsync of the file, then the rename and the
        folder's fsync). Runs on a worker thread."""
        w = self._open.pop(digest, None)
        if w is None or w.size != offset:  # not open (or moved under us): read it back once
            if w is not None:
                w.close_keep()
            w = self.blobs.resume(digest)
        try:
            w.write(body)
            if last:
                return w.commit()  # fsyncs the whole file before the rename: no sync first
            w.sync()
        except OSError:
            w.close_keep()
            os.truncate(self.blobs.upload_path(digest), offset)
            raise
        self._open[digest] = w  # kept open for the next chunk: no re-reading
        while len(self._open) > MAX_OPEN:
            self._open.pop(next(iter(self._open))).close_keep()
        return None

    # -- reading -----------------------------------------------------------------------------

    def blob_file(self, digest: str) -> tuple[Path, int, str] | None:
        """(path, size, media type) of a held blob, None if not held."""
        if not is_hash(digest) or digest not in self.held:
            return None
        path = self.blobs.path(digest)
        with open(path, "rb") as f:
            kind = sniff(f.read(16))
        if kind is None:  # pragma: no cover - only a blob written by hand
            return None
        info = BlobInfo(digest, self.held[digest], kind, new=False)
        return path, info.size, info.media_type


def expiry_interval(max_age: float) -> float:
    """How often a running node looks for abandoned partial uploads."""
    return max(0.1, min(max_age / 4, 3600.0))


def _blob_code(code: str) -> str:
    return {"too_large": "blob_too_large"}.get(code, code)


def _list_blobs(root: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    if not root.is_dir():
        return out
    for sub in root.iterdir():
        if len(sub.name) != 2 or not sub.is_dir():
            continue
        for p in sub.iterdir():
            if is_hash(p.name):
                out[p.name] = p.stat().st_size
    return out
