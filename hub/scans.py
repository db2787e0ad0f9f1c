"""The scans a hub holds and receives (DESIGN §3 "Scans"; docs/protocol.md "Scans").

``HubScans`` joins three things:

- the store's scan book (``hub.storage.ScanBook``: ``HubStore`` keeps it in hub.db and memory,
  ``PgStore`` in PostgreSQL, shared by every receiver): which hashes the entries held name,
  which blobs are held;
- the blob store the hub was started with (``hub.blobstore.Blobs``: the data folder's, or an
  S3-compatible object store with ``--blobs``), where a finished blob lives and is read from;
- the data folder's ``blobs/tmp/``, where a partial upload is kept between its chunks (and
  across restarts) until its last chunk: then kind, end and hash are checked, and only then is
  the blob handed to the blob store (renamed into the folder, or written to the object store
  under its hash and the local copy removed) and marked held in the book. The answer to the
  last chunk comes after both, so an acknowledged blob is durable and held for everyone. (On
  SQLite with the folder store, "held" is the book's memory, its row written by the next group
  commit without the answer waiting: the file is the truth, and ``load`` lists it again.)

It answers the lacking question, appends upload chunks (one at a time per hash, each fsynced
before its answer) and streams held blobs. What upstream is known to hold is learned by the
forwarder and kept in memory (after a restart it is asked about again). The decisions are
``hub.protocol.blobsync``'s.

The status figures: on the SQLite store, the book's ``blobsync.ScanTally`` keeps them
incrementally (the book is its one owner: ``refresh`` feeds it only the entries committed
since the last call, an upload that finishes is added to it by ``add_held``, the forwarder
calls ``upstream_holds``); on PostgreSQL the book's database counters are the source
(``summarize``). Partial uploads no chunk extended for
``partial_max_age`` are removed (``expire``: at start, then from ``run_expiry``, a task the
node runs), never one whose chunk is being appended.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import threading
from collections.abc import AsyncIterator, Container, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from hub.blobstore import Blobs, LocalBlobs
from hub.errors import BlobRefused, BlobsUnavailable, DiskFull
from hub.protocol import blobsync, clock
from hub.protocol.blobsync import ScanCounts, ScanIndex, ScanTally
from hub.scanbook import SqliteScanBook
from hub.shared.blobs import (
    PARTIAL_MAX_AGE,
    UPLOAD_SUFFIX,
    BlobInfo,
    BlobStore,
    BlobWriter,
    is_hash,
    sniff,
)
from hub.shared.errors import BlobError, SharedError
from hub.storage import CountedScanBook, HeldBlob, HubStorage, ScanBook, ScanSummary

log = logging.getLogger(__name__)

BLOB_DIR = "blobs"
MAX_OPEN = 32  # partial uploads kept open between chunks (others are read back when resumed)
LISTED = 100  # entries with scans pending listed in the status


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
        store: HubStorage,
        *,
        root: bool,
        max_size: int = 0,
        blobs: Blobs | None = None,
        partial_max_age: float = PARTIAL_MAX_AGE,
    ):
        self.blobs = BlobStore(data_dir / BLOB_DIR, **({"max_size": max_size} if max_size else {}))
        self.final: Blobs = blobs if blobs is not None else LocalBlobs(self.blobs)
        self.local = isinstance(self.final, LocalBlobs)  # finished blobs in the data folder
        self.book: ScanBook = store.scan_book
        self.sqlite = isinstance(self.book, SqliteScanBook)  # the tally is the status source
        if isinstance(self.book, SqliteScanBook):
            self.book.tally.root = root
        self.store = store
        self.root = root
        self.partial_max_age = partial_max_age
        self.upstream: dict[str, int] = {}  # blobs upstream is known to hold -> size
        self.book.follow_upstream(self.upstream)  # only added to: the book's cursor moves by it
        self.counters = Counters()
        self._locks = _UploadLocks()  # one chunk at a time per hash
        self._open: dict[str, BlobWriter] = {}  # partial uploads between their chunks
        self._open_lock = threading.Lock()  # chunks of different scans run on worker threads
        self._summary: ScanSummary | None = None
        self._arrivals: list[str] | None = None  # awaited blobs stored since taken (watched)
        self._awaited: Container[str] = ()  # what the watcher waits for

    def close(self) -> None:
        """Close the partial uploads kept open (they stay on disk, to be resumed)."""
        with self._open_lock:
            while self._open:
                self._open.popitem()[1].close_keep()

    async def load(self) -> None:
        """Clear what a crash left and drop the partial uploads abandoned for longer than
        ``partial_max_age``. On the SQLite store, feed the book's tally every entry once (on
        a worker thread; from now on only new ones). Where finished blobs live in the data
        folder, list in the book any blob file it does not know (a folder from before the
        book, or a crash between the rename and the COMMIT): the folder's file names are
        read, and only a file the book lacks is opened (to learn its kind)."""
        await asyncio.to_thread(self.blobs.clean_tmp)
        await self.expire()
        if self.sqlite:
            await asyncio.to_thread(self.refresh)
        if self.local:
            await self._adopt_folder()

    async def _adopt_folder(self) -> None:
        names = await asyncio.to_thread(_blob_names, self.blobs.root)
        now, adopted = clock.now_s(), 0
        for i in range(0, len(names), blobsync.MAX_ASK):
            batch = names[i : i + blobsync.MAX_ASK]
            known = await self.book.lookup(batch)
            unlisted = [h for h in batch if h in known and known[h] is None]
            if not unlisted:
                continue
            found = await asyncio.to_thread(_sniff_blobs, self.blobs, unlisted)
            for h, blob in found.items():
                adopted += await self.book.add_held(h, blob.size, blob.kind, now)
        log.info("%d scans in %s (%d listed now)", len(names), self.blobs.root, adopted)

    # -- what is named and held -------------------------------------------------------------

    @property
    def tally(self) -> ScanTally:
        """The SQLite book's tally (the one copy of what is named and held, and the figures)."""
        assert isinstance(self.book, SqliteScanBook), "the tally is the SQLite store's"
        return self.book.tally

    @property
    def held(self) -> Mapping[str, HeldBlob]:
        """hash -> size and kind of every held blob (the SQLite store only: the tally's)."""
        return self.tally.held

    @property
    def index(self) -> ScanIndex:
        return self.tally.index

    def upstream_holds(self, digest: str, size: int = 0) -> None:
        """Upstream said it holds ``digest`` (the forwarder learnt it from its answer)."""
        self.upstream[digest] = size
        self.book.upstream_took(digest)  # the book settles its cursor by this hash only
        if self.sqlite:
            self.tally.upstream_holds(digest)

    def refresh(self) -> ScanIndex:
        """The tally's index, fed with the records committed since the last call
        (``SqliteScanBook.refresh``). SQLite store only."""
        assert isinstance(self.book, SqliteScanBook), "the tally is the SQLite store's"
        return self.book.refresh().index

    def watch_arrivals(self, awaited: Container[str]) -> None:
        """From now on, remember each blob this hub stores that is in ``awaited`` (a live
        collection the watcher keeps) until ``take_arrivals``: the forwarder, for which a blob
        arriving then costs the blob, not a look at everything it waits for. Only what it
        awaits is remembered, so the list stays bounded while it takes none (upstream away)."""
        self._awaited = awaited
        if self._arrivals is None:
            self._arrivals = []

    def take_arrivals(self) -> list[str]:
        """The blobs stored here since the last call (empty unless watched)."""
        got = self._arrivals or []
        if self._arrivals is not None:
            self._arrivals = []
        return got

    # -- partial uploads nobody finishes -----------------------------------------------------

    async def expire(self) -> int:
        """Remove the partial uploads not extended for ``partial_max_age`` seconds (their
        sender gone for good; one that comes back starts that scan again from byte 0), with
        the blob store's ``expire_tmp`` on a worker thread. Never one whose chunk is being
        appended: each stale upload's lock is taken first (one whose lock is held is left),
        so no chunk of it starts while it goes; one a chunk extended since the listing stays
        (``expire_tmp`` checks its age again just before it goes). Returns how many were
        removed."""
        stale = await asyncio.to_thread(self.blobs.stale_partials, self.partial_max_age)
        async with contextlib.AsyncExitStack() as held:
            taken: set[str] = set()
            for path in stale:
                digest = path.name.removesuffix(UPLOAD_SUFFIX)
                if digest == path.name or digest in self._locks:  # a chunk on its way in
                    continue
                await held.enter_async_context(self._locks.hold(digest))  # free: at once
                taken.add(digest)
                with self._open_lock:
                    w = self._open.pop(digest, None)
                if w is not None:
                    w.close_keep()
            keep = _Untaken(taken)
            n, _ = await asyncio.to_thread(self.blobs.expire_tmp, self.partial_max_age, keep=keep)
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

    # -- the status ----------------------------------------------------------------------------

    def _tallied(self, limit: int) -> ScanSummary:
        """The SQLite store's figures, read off the tally (nothing walks every entry)."""
        self.refresh()
        t = self.tally
        return ScanSummary(t.counts(), t.entries_pending, t.pending(limit))

    async def summarize(self) -> None:
        """Count again where the figures are a database read (PostgreSQL: the book's
        counters; ``status`` shows the last count). Nothing to do on SQLite: ``status`` reads
        the tally itself, once."""
        if not self.sqlite:
            book = cast(CountedScanBook, self.book)
            self._summary = await book.summary(None if self.root else self.upstream, LISTED)

    def status(self, rate_bps: float, limit: int = LISTED) -> tuple[dict[str, Any], list[Any]]:
        """``scans`` of ``c1hub status`` (with ``eta_s`` at ``rate_bps``) and the first
        ``limit`` entries whose scans are pending: on the SQLite store read off the tally now,
        else as of the last ``summarize`` (the book's database counters)."""
        if self.sqlite:
            self._summary = self._tallied(limit)
        s = self._summary
        if s is None:
            s = ScanSummary(ScanCounts(0, 0, 0, 0, 0), 0, [])
        out: dict[str, Any] = s.counts.to_dict()
        out["entries_pending"] = s.entries_pending
        out["eta_s"] = blobsync.eta_s(s.counts.bytes_pending, rate_bps)
        listed = [{"election": k[0], "form": k[1], "tps": k[2], "missing": m}
                  for k, m in s.listed]  # fmt: skip
        return out, listed

    async def counts(self) -> ScanCounts:
        if self.sqlite:
            return self._tallied(0).counts
        await self.summarize()
        assert self._summary is not None
        return self._summary.counts

    async def metrics(self) -> dict[str, int]:
        """Gauges and counters for ``/metrics``."""
        c, k = await self.counts(), self.counters
        return {**c.to_dict(), "received": k.received_blobs, "received_bytes": k.received_bytes,
                "sent": k.sent_blobs, "sent_bytes": k.sent_bytes}  # fmt: skip

    async def lacking(self, hashes: Iterable[str]) -> dict[str, Any]:
        """The answer to a lacking question (``blobsync.lacking_reply``)."""
        hashes = list(hashes)
        known = await self.book.lookup(hashes)
        out = []
        for h in hashes:
            if h not in known:
                out.append((h, blobsync.UNKNOWN, 0))
            elif known[h] is not None:
                out.append((h, blobsync.UPSTREAM if h in self.upstream else blobsync.HELD, 0))
            else:
                out.append((h, blobsync.LACKING, self.blobs.upload_offset(h)))
        return blobsync.lacking_reply(out)

    # -- receiving ---------------------------------------------------------------------------

    async def put_chunk(
        self, digest: str, start: int, total: int, pieces: list[bytes]
    ) -> dict[str, Any]:
        """Append one upload chunk (the body as ``pieces``); the answer only once it is durable
        (and, for the last chunk, once the blob is in the blob store under its hash and held
        in the book)."""
        async with self._locks.hold(digest):
            return await self._put(digest, start, total, pieces)

    async def _put(
        self, digest: str, start: int, total: int, pieces: list[bytes]
    ) -> dict[str, Any]:
        known = await self.book.lookup([digest])
        named, held = digest in known, known.get(digest) is not None
        try:  # the offset, the verdict, the append, the check and (local) the rename: one trip
            verdict, info = await asyncio.to_thread(
                self._receive, digest, start, total, pieces, named, held
            )
            if not verdict.ok:
                raise BlobRefused(verdict.code, verdict.reason, offset=verdict.offset)
            length = verdict.offset - start
            self.counters.received_bytes += length
            if info is None:
                return {"offset": verdict.offset, "stored": 0}
            await self._finish(digest, start, info)
        except BlobError as exc:
            raise BlobRefused(_blob_code(exc.code), exc.message) from None
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(
                    "the hub's disk is full: scans cannot be stored; free space on the hub"
                ) from None
            raise
        self.counters.received_blobs += 1
        if self._arrivals is not None and digest in self._awaited:
            self._arrivals.append(digest)
        log.debug("received scan %s (%s, %d bytes)", digest, info.kind, info.size)
        return {"offset": info.size, "stored": 1}

    async def _finish(self, digest: str, offset: int, info: BlobInfo) -> None:
        """The verified upload into the blob store (where finished blobs live in the data
        folder, ``_receive`` renamed it already), then held in the book (on SQLite with the
        folder store, in memory now and its row in the next group commit: the folder is the
        truth, see ``SqliteScanBook.add_held_listed``). If either fails, the upload goes back
        to ``offset`` (before its last chunk): that chunk is sent again."""
        path = self.blobs.upload_path(digest)
        try:
            if not self.local:
                await self.final.adopt(path, digest)
            if self.local and isinstance(self.book, SqliteScanBook):  # the folder is the truth
                self.book.add_held_listed(digest, info.size, info.kind, clock.now_s())
            else:
                await self.book.add_held(digest, info.size, info.kind, clock.now_s())
        except BaseException as exc:
            await asyncio.to_thread(_truncate, path, offset)
            if isinstance(exc, SharedError) and getattr(exc, "code", "") == "unavailable":
                raise BlobsUnavailable(f"the scan store cannot be reached: {exc}") from None
            raise

    def _receive(
        self, digest: str, start: int, total: int, pieces: list[bytes], named: bool, held: bool
    ) -> tuple[blobsync.ChunkVerdict, BlobInfo | None]:
        """The receiver's verdict on a chunk at ``start`` (against the offset held durably),
        and if it is taken, the chunk appended (``_append``); where finished blobs live in the
        data folder, a last chunk's verified blob is renamed into place here too. Runs on a
        worker thread, under the upload's lock."""
        offset = self.blobs.upload_offset(digest)
        if named and not held and 0 < offset == total:
            return self._whole(digest, total)
        length = sum(len(p) for p in pieces)
        verdict = blobsync.check_chunk(
            named=named, held=held, offset=offset, start=start, length=length, total=total,
            max_size=self.blobs.max_size,
        )  # fmt: skip
        if not verdict.ok:
            return verdict, None
        info = self._append(digest, offset, pieces, verdict.last)
        if info is not None and self.local:
            assert isinstance(self.final, LocalBlobs)
            path = self.blobs.upload_path(digest)
            try:
                self.final.adopt_now(path, digest)
            except BaseException:
                _truncate(path, offset)  # that chunk is sent again
                raise
        return verdict, info

    def _whole(self, digest: str, total: int) -> tuple[blobsync.ChunkVerdict, BlobInfo | None]:
        """A chunk of a scan whose partial upload has all ``total`` bytes already: the
        receiver stopped between its last chunk and the rename, and the sender, told "from
        byte TOTAL", sends the last byte again. That chunk is not needed: the upload is
        checked whole and finished. One whose bytes are not the scan (a power cut can leave
        a file its length but not its content) is dropped, and the sender told to send the
        scan again from byte 0. Runs on a worker thread, under the upload's lock."""
        with self._open_lock:
            w = self._open.pop(digest, None)
        if w is not None:  # pragma: no cover - a writer is kept open only short of the end
            w.close_keep()
        path = self.blobs.upload_path(digest)
        try:  # read back through the hash and checks, then verified whole (a refusal drops it)
            info = self.blobs.resume(digest).verify()
        except BlobError:
            path.unlink(missing_ok=True)
            log.warning("dropped the partial upload of scan %s: its %d bytes are not the scan; "
                        "its sender sends it again from byte 0", digest, total)  # fmt: skip
            reason = "the bytes held here were not this scan: send it again from byte 0"
            return blobsync.ChunkVerdict(False, "offset_mismatch", reason, 0), None
        if self.local:
            assert isinstance(self.final, LocalBlobs)
            self.final.adopt_now(path, digest)  # a failure leaves it whole, to try again
        log.info("finishing scan %s: its upload was whole when the receiver stopped", digest)
        return blobsync.ChunkVerdict(True, offset=total, last=True), info

    def _append(self, digest: str, offset: int, pieces: list[bytes], last: bool) -> BlobInfo | None:
        """Append ``pieces`` at ``offset`` and fsync (a failure leaves the file at ``offset``);
        on the last chunk, verify the whole blob instead (one fsync of the file; it stays at
        the upload path for ``_finish``). Runs on a worker thread."""
        with self._open_lock:
            w = self._open.pop(digest, None)
        if w is None or w.size != offset:  # not open (or moved under us): read it back once
            if w is not None:
                w.close_keep()
            w = self.blobs.resume(digest)
        try:
            for piece in pieces:
                w.write(piece)
            if last:
                return w.verify()  # fsyncs the whole file: no sync first
            w.sync()
        except OSError:
            w.close_keep()
            _truncate(self.blobs.upload_path(digest), offset)
            raise
        with self._open_lock:  # kept open for the next chunk: no re-reading
            self._open[digest] = w
            over = max(0, len(self._open) - MAX_OPEN)  # the oldest go first
            evicted = [self._open.pop(k) for k in list(self._open)[:over]]
        for old in evicted:
            old.close_keep()
        return None

    # -- reading -----------------------------------------------------------------------------

    async def held_blob(self, digest: str) -> HeldBlob | None:
        """Size and kind of a held blob, None if not held."""
        if not is_hash(digest):
            return None
        return await self.book.held(digest)

    def read(self, digest: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes ``start`` .. ``end`` (inclusive) of a held blob, from the blob store."""
        return self.final.iter_chunks(digest, start=start, end=end)

    async def read_bytes(self, digest: str, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes of a held blob from ``offset`` (a chunk to send upstream):
        from the data folder in one worker-thread call, else streamed from the blob store."""
        if self.local:
            return await asyncio.to_thread(self.blobs.read, digest, offset, length)
        return b"".join([c async for c in self.read(digest, offset, offset + length - 1)])


class _UploadLocks:
    """One ``asyncio.Lock`` per upload hash, kept while anyone holds or waits for it (so a
    waiter never ends up with a lock a newcomer does not see)."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    def __contains__(self, digest: object) -> bool:
        return digest in self._held

    @contextlib.asynccontextmanager
    async def hold(self, digest: str) -> AsyncIterator[None]:
        lock, users = self._held.setdefault(digest, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._held[digest]


class _Untaken:
    """The partial files ``expire_tmp`` must keep: every upload whose lock the expiry did
    not take itself (``taken``), so none goes while a chunk of it could be appended."""

    def __init__(self, taken: set[str]):
        self.taken = taken

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str) or not name.endswith(UPLOAD_SUFFIX):
            return False  # not an upload (a ``.part`` left by a crash): it may go
        return name.removesuffix(UPLOAD_SUFFIX) not in self.taken


def _truncate(path: Path, offset: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.truncate(path, offset)


def expiry_interval(max_age: float) -> float:
    """How often a running node looks for abandoned partial uploads."""
    return max(0.1, min(max_age / 4, 3600.0))


def _blob_code(code: str) -> str:
    return {"too_large": "blob_too_large"}.get(code, code)


def _blob_names(root: Path) -> list[str]:
    """The hashes of the blob files in the folder ``root`` (``ab/abcdef…``), from the
    directory listings only: no file is opened."""
    out: list[str] = []
    try:
        subs = [d.path for d in os.scandir(root) if len(d.name) == 2 and d.is_dir()]
    except FileNotFoundError:
        return out
    for sub in subs:
        with os.scandir(sub) as it:
            out.extend(d.name for d in it if is_hash(d.name))
    return out


def _sniff_blobs(blobs: BlobStore, hashes: Iterable[str]) -> dict[str, HeldBlob]:
    """Size and kind of the blob files of ``hashes`` (those of a known image kind)."""
    out: dict[str, HeldBlob] = {}
    for h in hashes:
        path = blobs.path(h)
        with contextlib.suppress(FileNotFoundError), open(path, "rb") as f:
            kind = sniff(f.read(16))
            if kind is not None:
                out[h] = HeldBlob(os.fstat(f.fileno()).st_size, kind)
    return out
