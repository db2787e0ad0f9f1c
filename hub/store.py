"""The hub's durable store: one SQLite file (``hub.db``), one writer, group commit.

``HubStore`` owns ``hub.db`` through ``hub.shared.db.Database``. Everything that changes it
goes through the store: pushed batches queue up for the single writer task, which takes every
batch waiting, decides each with the sans-IO planner (``hub.protocol.ingest.plan``) and the
trust policy (``hub.protocol.trust``), writes them all in ONE transaction, commits (WAL,
synchronous=FULL) and only then answers each pusher. A receipt is therefore never issued for
anything that is not on disk. Smaller writes (enrollment, approval, upstream confirmations)
take the same lock and have their own short transactions.

Reads see committed data only: SQL reads go through the database's read-only connections (the
writer's own reads happen inside its transaction), and the in-memory state (``hub.memory``:
heads, devices, endorsements, facts, counts, confirmations) changes only after a COMMIT
succeeds. A transaction collects its changes in a ``Draft``; when the COMMIT fails the draft is
dropped and the state is read back from the database, built aside and swapped in whole, so a
concurrent reader never sees it go backwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from hub import results as results_mod
from hub import schema
from hub import status as status_mod
from hub.examine import Checked
from hub.memory import (
    Confirmed,
    DeviceRow,
    Facts,
    Memory,
    PushResult,
    Rejection,
    StoreView,
    load,
    room_forks,
    split,
)
from hub.protocol import ingest, state, trust, worklist
from hub.protocol.enroll import Endorsement
from hub.protocol.errors import ProtocolError
from hub.protocol.ingest import PENDING, Device, Head
from hub.protocol.quota import QUOTA, Quotas, Usage
from hub.scanbook import SqliteScanBook, holds_exactly
from hub.shared.db import Database
from hub.status import DeviceInfo
from hub.storage import Counters, NodeInfo, OriginView, QuotaLog
from hub.transaction import Draft, Transaction

__all__ = [
    "Confirmed",
    "DeviceRow",
    "Facts",
    "HubStore",
    "PushResult",
    "Rejection",
    "StoreUnavailable",
    "StoreView",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


def _file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of ``path``; None when it is gone."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


ON_LOOP = 256  # records a batch may have for its planning to run on the event loop


async def _off_loop(n: int, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` for ``n`` records: inline when few, else on a worker thread, so
    that a full batch never holds the event loop. The caller holds the store's lock, so what
    ``fn`` reads does not change meanwhile."""
    if n <= ON_LOOP:
        return fn(*args, **kwargs)
    return await asyncio.to_thread(fn, *args, **kwargs)


class StoreUnavailable(ProtocolError):
    """The hub's database failed: this push is refused (HTTP 503), and when the store cannot
    read itself back, every push until a restart."""

    code = "unavailable"


@dataclass(slots=True)
class _Job:
    checked: Sequence[Checked]
    endorsements: Sequence[Endorsement]
    now: int
    future: asyncio.Future[PushResult]


# a blob due in the scan book: its row, the book's memory update, its caller's future
_DueBlob = tuple[tuple[str, int, str, int], Callable[[], None], "asyncio.Future[None]"]


def _retrieved(done: asyncio.Future[None]) -> None:
    """Mark a blob's outcome as seen, so that one whose caller was cancelled while it waited
    logs no "Future exception was never retrieved" (its caller, if still there, sees it)."""
    if not done.cancelled():
        done.exception()


def _fail(due: Sequence[_DueBlob], exc: BaseException) -> None:
    for _, _, done in due:
        if not done.done():
            done.set_exception(exc)


_DEVICE_COLUMNS = (
    "id, public, node_id, name, role, state, first_seen, last_seen, approved_at, revoked_at,"
    " revoked_after_seq, forked, endorsement"
)


class HubStore:
    """Owner of hub.db: ``store = await HubStore.open(dir)`` ... ``await store.close()``."""

    def __init__(
        self,
        db: Database,
        memory: Memory,
        *,
        refuse_unknown: bool = False,
        quotas: Quotas | None = None,
    ):
        self._db = db
        self._mem = memory
        self.path = db.path
        self.refuse_unknown = refuse_unknown
        self.quotas = quotas or Quotas()  # on what devices nobody approved make this hub keep
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one write (transaction + apply) or reload at a time
        self.commits = 0  # group commits of pushed batches
        self.max_group = 256  # batches per transaction
        self.changed = asyncio.Event()  # set after every commit that stored records
        self.broken: BaseException | None = None  # set when the writer cannot go on
        self._file = _file_id(self.path)  # hub.db as opened: (device, inode)
        self._log_quota = QuotaLog(log)
        self.scan_book = SqliteScanBook(self, {}, self._queue_blob)  # the scans (hub.scanbook)
        self._blobs_due: list[_DueBlob] = []
        self._blob_writer: asyncio.Future[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def open(
        cls, data_dir: Path, *, refuse_unknown: bool = False, quotas: Quotas | None = None
    ) -> HubStore:
        # hub.db is created 0600 here; SQLite gives its -wal and -shm files the same mode
        os.close(os.open(data_dir / schema.DB_FILE, os.O_WRONLY | os.O_CREAT, 0o600))
        db = await Database.open(data_dir / schema.DB_FILE, schema.MIGRATIONS, label="c1hub")
        try:
            store = cls(db, await load(db), refuse_unknown=refuse_unknown, quotas=quotas)
            held = holds_exactly(await db.fetchall("SELECT hash, size, kind FROM blobs"))
            store.scan_book = SqliteScanBook(store, held, store._queue_blob)
        except BaseException:
            await db.close()
            raise
        store._writer = asyncio.create_task(store._write_loop(), name="hub-store-writer")
        return store

    async def close(self) -> None:
        if self._blob_writer is not None:
            # waits for the scan book's last COMMIT; its failure or cancellation went to the
            # callers of add_held already (asyncio.wait raises neither)
            await asyncio.wait([self._blob_writer])
        if self._writer is not None:
            await self._queue.put(None)
            await self._writer
            self._writer = None
        await self._db.close()

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """``Database.transaction``, checking before its COMMIT that hub.db is still the file
        this store opened: a file replaced or deleted under the running hub would take every
        later commit (and its receipts) into nothing, so from then on nothing is stored."""
        async with self._db.transaction() as conn:
            yield conn
            if _file_id(self.path) != self._file:
                gone = StoreUnavailable(
                    f"{self.path} was replaced or deleted while the hub was running: nothing "
                    "more is stored or receipted. Stop the hub, put its database back, restart "
                    "it. Entries stay safe on the laptops."
                )
                if self.broken is None:
                    log.critical("%s", gone.message)
                    self.broken = gone
                raise gone

    def _queue_blob(
        self, digest: str, size: int, kind: str, now: int, then: Callable[[], None]
    ) -> asyncio.Future[None]:
        """Queue a blob durable in the blob store for the scan book's one write; the future
        is done after its COMMIT. Blobs that finish while one commit runs share the next (one
        transaction, one fsync for all of them, as pushes share a group commit). ``then``
        (the book's memory update) runs on the writer right after the COMMIT, so memory
        follows hub.db even when the caller is cancelled while it waits."""
        done = asyncio.get_running_loop().create_future()
        done.add_done_callback(_retrieved)  # a caller gone: its failure is not "never retrieved"
        self._blobs_due.append(((digest, size, kind, now), then, done))
        if self._blob_writer is None or self._blob_writer.done():
            self._blob_writer = asyncio.ensure_future(self._write_blobs())
        return done

    async def _write_blobs(self) -> None:
        while self._blobs_due:
            batch, self._blobs_due = self._blobs_due, []
            try:
                async with self._lock, self._transaction() as conn:
                    await conn.executemany(
                        "INSERT OR IGNORE INTO blobs(hash, size, kind, at) VALUES (?,?,?,?)",
                        [row for row, _, _ in batch],
                    )
            except Exception as exc:
                _fail(batch, exc)
                continue
            except BaseException:
                # the writer is cancelled: fail this batch and every one queued behind it
                rest, self._blobs_due = self._blobs_due, []
                _fail(batch + rest, StoreUnavailable("the hub is stopping"))
                raise
            for _, then, done in batch:
                try:
                    then()
                except Exception as exc:  # a bug in the memory update: its caller hears it
                    if not done.done():
                        done.set_exception(exc)
                    continue
                if not done.done():
                    done.set_result(None)

    @property
    def db(self) -> Database:
        """The database, for PRAGMA checks and fault injection in tests. Write only through
        the store's methods: they keep memory and disk in step."""
        return self._db

    # -- committed state, in memory (read-only views) ----------------------------------------

    @property
    def devices(self) -> Mapping[bytes, DeviceRow]:
        return self._mem.devices

    @property
    def devices_by_id(self) -> Mapping[int, DeviceRow]:
        return self._mem.devices_by_id

    @property
    def heads(self) -> Mapping[int, Head]:
        return self._mem.heads

    @property
    def endorsements(self) -> Mapping[bytes, Mapping[bytes, bytes]]:
        return self._mem.endorsements

    @property
    def counts(self) -> Mapping[int, int]:
        return self._mem.counts

    @property
    def confirmed(self) -> Mapping[int, Confirmed]:
        return self._mem.confirmed

    @property
    def rejections(self) -> Mapping[int, Rejection]:
        return self._mem.rejections

    @property
    def fork_count(self) -> int:
        return self._mem.fork_count

    @property
    def held(self) -> Mapping[bytes, Usage]:
        """What each device never approved holds (records, bytes), for the quotas."""
        return self._mem.held

    @property
    def held_total(self) -> Usage:
        return self._mem.held_total

    @property
    def pending_count(self) -> int:
        return self._mem.pending

    def room_forks(self) -> tuple[int, int]:
        """(forks of devices approved at some point, forks of keys never approved)."""
        return room_forks(self._mem.forks, self._mem.devices_by_id)

    @property
    def records_stored(self) -> int:
        return len(self._mem.facts)

    @property
    def facts(self) -> Sequence[Facts]:
        """Per stored record in storing order (a live view: only ever appended to, or replaced
        whole after a failed commit)."""
        return self._mem.facts

    def head_of(self, public: bytes) -> Head:
        d = self._mem.devices.get(public)
        return self._mem.heads.get(d.id, Head()) if d else Head()

    def snapshot(self) -> StoreView:
        return self._mem.snapshot()

    def find_device(self, node_id: str) -> DeviceRow | None:
        """A device by node id (any case) or public key (hex)."""
        want = node_id.strip()
        for d in self._mem.devices.values():
            if d.node_id == want.upper() or d.public.hex() == want.lower():
                return d
        return None

    def knows_endorsement(self, raw: bytes) -> bool:
        """True if these endorsement bytes are already held (no need to check them again)."""
        m = self._mem
        return any(raw in by.values() for by in m.endorsements.values()) or any(
            d.endorsement == raw for d in m.devices.values()
        )

    def chain_for(self, publics: Iterable[bytes]) -> list[bytes]:
        """Endorsements an upstream needs to link ``publics`` to this node (``trust.chain_for``)."""
        return trust.chain_for(publics, self._mem.devices, self._mem.endorsements)

    async def refresh(self) -> None:
        """For the forwarder (``UpstreamStore``): the views above are always current here."""

    def backlog(self) -> int:
        """Records the upstream does not hold yet: forward limit minus confirmed, summed."""
        m = self._mem
        limits = {dev: d.forward_limit(m.heads[dev].seq) if dev in m.heads else 0
                  for dev, d in m.devices_by_id.items()}  # fmt: skip
        return trust.backlog(limits, {dev: c.seq for dev, c in m.confirmed.items()})

    # -- committed state, in SQLite (read-only connections) ----------------------------------

    async def get_meta(self, key: str) -> bytes | None:
        row = await self._db.fetchone("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else bytes(row[0])

    async def record_raw(self, public: bytes, seq: int) -> bytes | None:
        d = self._mem.devices.get(public)
        if d is None:
            return None
        row = await self._db.fetchone(
            "SELECT raw FROM records WHERE dev = ? AND seq = ?", (d.id, seq)
        )
        return None if row is None else bytes(row[0])

    async def records_after(self, dev: int, after_seq: int, limit: int) -> list[bytes]:
        """Up to ``limit`` raw records of ``dev``'s log after ``after_seq``, in seq order."""
        rows = await self._db.fetchall(
            "SELECT raw FROM records WHERE dev = ? AND seq > ? ORDER BY seq LIMIT ?",
            (dev, after_seq, limit),
        )
        return [bytes(r[0]) for r in rows]

    async def received_at(self, dev: int, seq: int) -> int | None:
        row = await self._db.fetchone(
            "SELECT received_at FROM records WHERE dev = ? AND seq = ?", (dev, seq)
        )
        return None if row is None else int(row[0])

    async def iter_records(self) -> AsyncIterator[tuple[DeviceRow, int, bytes]]:
        """Every stored record, by device then seq, streamed from one snapshot."""
        async for dev, seq, raw in self._db.iterate(
            "SELECT dev, seq, raw FROM records ORDER BY dev, seq"
        ):
            yield self._mem.devices_by_id[dev], seq, bytes(raw)

    async def fork_evidence(self) -> list[tuple[int, int, bytes, bytes | None]]:
        """(dev, seq, evidence raw, held raw) of every fork, for forwarding upstream."""
        rows = await self._db.fetchall("SELECT dev, seq, raw, held_raw FROM forks ORDER BY id")
        return [
            (dev, seq, bytes(raw), bytes(held) if held else None) for dev, seq, raw, held in rows
        ]

    async def forks(self, limit: int = -1, after: int = 0) -> list[dict[str, Any]]:
        """Forks with both records as evidence (``GET /v1/forks``), in ``id`` order: at most
        ``limit`` (-1: all) with an id over ``after``."""
        rows = await self._db.fetchall(
            "SELECT f.id, d.node_id, d.name, f.seq, f.raw, f.held_raw, f.detected_at,"
            " d.approved_at IS NULL FROM forks f"
            " JOIN devices d ON d.id = f.dev WHERE f.id > ? ORDER BY f.id LIMIT ?",
            (after, limit),
        )
        return [
            {
                "id": fid,
                "device": node_id,
                "name": name,
                "seq": seq,
                "detected_at": at,
                "evidence": bytes(raw).hex(),
                "held": bytes(held).hex() if held else None,
                "unapproved": bool(never),
            }
            for fid, node_id, name, seq, raw, held, at, never in rows
        ]

    # -- HubStorage (hub.storage): the service's reads, as coroutines over memory -----------

    async def device(self, public: bytes) -> DeviceRow | None:
        return self._mem.devices.get(public)

    async def lookup(self, node_id: str) -> DeviceRow | None:
        return self.find_device(node_id)

    async def heads_of(self, publics: Sequence[bytes]) -> dict[bytes, Head]:
        m, out = self._mem, {}
        for p in publics:
            d = m.devices.get(p)
            h = m.heads.get(d.id) if d is not None else None
            if h is not None:
                out[p] = h
        return out

    async def holds_endorsement(self, e: Endorsement) -> bool:
        if e.raw in self._mem.endorsements.get(e.device, {}).values():
            return True
        d = self._mem.devices.get(e.device)
        return d is not None and d.endorsement == e.raw

    async def upstream_receipt(self, public: bytes) -> Confirmed | None:
        d = self._mem.devices.get(public)
        return self._mem.confirmed.get(d.id) if d is not None else None

    async def origin_head(self, public: bytes) -> OriginView:
        m = self._mem  # read without an await: one committed state
        d = m.devices.get(public)
        if d is None:
            return OriginView(None, Head(), None)
        return OriginView(d, m.heads.get(d.id, Head()), m.confirmed.get(d.id))

    async def counted_facts(self, q: worklist.Query) -> list[state.EntryFacts]:
        view = self.snapshot()
        return [f.facts for f in view.facts if view.is_accepted(f)]

    async def status(self, node: NodeInfo, now: float) -> dict[str, Any]:
        """Derived on a worker thread from a snapshot, so a big store does not stall pushes."""
        view = self.snapshot()
        return await asyncio.to_thread(
            status_mod.build, view, node_id=node.node_id, name=node.name, role=node.role,
            hub_public=node.public, master=node.master, now=now,
        )  # fmt: skip

    async def device_list(self, hub_public: bytes) -> list[DeviceInfo]:
        return status_mod.device_list(self.snapshot(), hub_public)

    async def device_page(
        self, hub_public: bytes, after: tuple[int, str] | None, limit: int
    ) -> list[DeviceInfo]:
        return status_mod.device_list(self.snapshot(), hub_public, after, limit)

    async def device_info(self, d: DeviceRow, hub_public: bytes) -> DeviceInfo:
        return status_mod.device_info(self.snapshot(), d, hub_public)

    async def counters(self) -> Counters:
        by_state: dict[str, int] = {}
        for d in self._mem.devices.values():
            by_state[d.state] = by_state.get(d.state, 0) + 1
        forks, unapproved = self.room_forks()
        held = self.held_total
        return Counters(self.records_stored, self.commits, forks, by_state, unapproved,
                        held.records, held.bytes)  # fmt: skip

    async def results(
        self, election: str, level: str = "national", code: str = ""
    ) -> dict[str, Any]:
        width = results_mod.region_width(level, code)
        view = self.snapshot()
        return await asyncio.to_thread(results_mod.from_view, view, election, level, code, width)

    # -- small writes ------------------------------------------------------------------------

    async def set_meta(self, key: str, value: bytes) -> None:
        async with self._lock:
            await self._db.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    async def enroll(self, public: bytes, name: str, role: str, now: int) -> DeviceRow:
        """First contact puts a device in pending; a known device keeps its state (and its
        role once approved: ``trust.enroll``)."""
        async with self._lock:
            draft = Draft(self._mem, self.quotas)
            async with self._transaction() as conn:
                d = await self._tx(conn, draft).enroll(public, name, role, now)
            self._applied(draft)
            return d

    async def approve(self, public: bytes, now: int, endorsement: bytes | None = None) -> DeviceRow:
        """Approve a device (with this node's ``endorsement`` of it) and, transitively, every
        pending device an approved hub vouches for (``trust.approve``)."""
        async with self._lock:
            draft = Draft(self._mem, self.quotas)
            async with self._transaction() as conn:
                tx = self._tx(conn, draft)
                for step in trust.approve(public, draft.devices, draft.endorsements):
                    await tx.approve(step, now, endorsement if step.via is None else None)
            draft.changed = True
            self._applied(draft)
            return self._mem.devices[public]

    async def revoke(self, public: bytes, now: int) -> DeviceRow:
        """Revoke a device after its current head and, for a hub, every device approved here
        only through that hub's word (``trust.revoke``): a stolen hub stops vouching."""
        async with self._lock:
            draft = Draft(self._mem, self.quotas)
            async with self._transaction() as conn:
                tx = self._tx(conn, draft)
                heads = {p: draft.head(d.id).seq for p, d in draft.devices.items()}
                for step in trust.revoke(public, draft.devices, draft.endorsements, heads):
                    await tx.revoke(step, now)
            draft.changed = True
            self._applied(draft)
            return self._mem.devices[public]

    def _tx(self, conn: aiosqlite.Connection, draft: Draft) -> Transaction:
        return Transaction(conn, draft, self.path.parent)

    def _applied(self, draft: Draft) -> None:
        """The COMMIT succeeded: make the draft the state everyone reads, then say what
        happened."""
        draft.apply()
        for level, msg, args in draft.logs:
            log.log(level, msg, *args)
        if draft.changed:
            self.changed.set()

    # -- upstream bookkeeping ----------------------------------------------------------------

    async def confirm(self, dev: int, seq: int, hash_: bytes, receipt: bytes, now: int) -> None:
        """Record upstream's receipt for ``dev`` up to ``seq`` (only ever moves forward)."""
        async with self._lock:
            old = self._mem.confirmed.get(dev)
            if old is not None and old.seq >= seq:
                return
            await self._db.execute(
                "INSERT INTO upstream(dev, seq, hash, receipt, at) VALUES (?,?,?,?,?)"
                " ON CONFLICT(dev) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,"
                " receipt = excluded.receipt, at = excluded.at WHERE excluded.seq > upstream.seq",
                (dev, seq, hash_, receipt, now),
            )
            self._mem.confirmed[dev] = Confirmed(seq, hash_, receipt, now)
            rej = self._mem.rejections.get(dev)
            if rej is not None and rej.seq is not None and rej.seq <= seq:
                del self._mem.rejections[dev]

    async def unconfirm(self, dev: int, seq: int, hash_: bytes) -> None:
        """Move ``dev``'s confirmation back to ``seq``: upstream lost what it had signed for.
        The row keeps upstream's old receipt as evidence of the broken promise."""
        async with self._lock:
            old = self._mem.confirmed.get(dev)
            if old is None or old.seq <= seq:
                return
            await self._db.execute(
                "UPDATE upstream SET seq = ?, hash = ? WHERE dev = ?", (seq, hash_, dev)
            )
            self._mem.confirmed[dev] = Confirmed(seq, hash_, old.receipt, old.at)

    async def reject_upstream(self, r: Rejection) -> None:
        """Record upstream's refusal of ``r.dev``'s entry ``r.seq`` (kept as history)."""
        async with self._lock:
            prev = self._mem.rejections.get(r.dev)
            if prev is not None and (prev.seq, prev.code, prev.reason) == (
                r.seq, r.code, r.reason,
            ):  # fmt: skip
                return
            await self._db.execute(
                "INSERT INTO upstream_rejections(dev, seq, code, reason, at) VALUES (?,?,?,?,?)",
                (r.dev, r.seq, r.code, r.reason, r.at),
            )
            self._mem.rejections[r.dev] = r

    # -- pushed records: the group-commit writer ---------------------------------------------

    async def push(
        self, checked: Sequence[Checked], now: int, endorsements: Sequence[Endorsement] = ()
    ) -> PushResult:
        """Queue a batch for the writer; returns once it is durably committed (or refused)."""
        if self.broken is not None:
            raise StoreUnavailable(
                f"the hub's database failed ({self.broken}); nothing more can be stored until "
                "the hub is restarted. Entries stay safe on the laptops."
            )
        fut: asyncio.Future[PushResult] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(checked, endorsements, now, fut))
        return await fut

    async def _write_loop(self) -> None:
        try:
            await self._write_jobs()
        except BaseException as exc:
            if self.broken is None:
                self.broken = exc
            raise
        finally:
            # Nobody may wait forever for a commit that will not come.
            while not self._queue.empty():
                job = self._queue.get_nowait()
                if job is not None and not job.future.done():
                    job.future.set_exception(
                        StoreUnavailable("the hub's writer stopped; restart the hub")
                    )

    async def _write_jobs(self) -> None:
        while True:
            job = await self._queue.get()
            if job is None:
                return
            jobs = [job]
            stop = False
            while len(jobs) < self.max_group and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    stop = True
                    break
                jobs.append(nxt)
            try:
                async with self._lock:
                    results = await self._commit(jobs)
            except Exception as exc:
                log.exception("commit failed; reading the state back from the database")
                failed = StoreUnavailable(
                    f"the hub could not store this batch ({exc}); nothing of it was kept. "
                    "Send it again later."
                )
                failed.__cause__ = exc
                for j in jobs:  # answer first: the reload below may fail too
                    if not j.future.done():
                        j.future.set_exception(failed)
                try:
                    await self._reload()
                except Exception as fatal:
                    log.critical(
                        "the hub's database cannot be read back after a failed commit (%s): "
                        "refusing all pushes; stop the hub, check the disk, restart", fatal,
                    )  # fmt: skip
                    self.broken = fatal
                    return
            else:
                for j, r in zip(jobs, results, strict=True):
                    if not j.future.done():
                        j.future.set_result(r)
            if stop:
                return

    async def _reload(self) -> None:
        """Read the committed state back (after a COMMIT that failed: it may have reached the
        disk all the same) and swap it in whole."""
        async with self._lock:
            self._mem = await load(self._db)

    async def _commit(self, jobs: list[_Job]) -> list[PushResult]:
        draft = Draft(self._mem, self.quotas)
        results: list[PushResult] = []
        async with self._transaction() as conn:
            tx = self._tx(conn, draft)
            for job in jobs:
                if job.endorsements:
                    await tx.endorse(job.endorsements, job.now)
            # Only the origins of these batches: a hub with many devices pays for what it
            # is sent, not for every device it knows.
            origins = {c.ex.record.origin for j in jobs for c in j.checked if c.ex.record}
            known = [d for o in origins if (d := draft.device(o)) is not None]
            heads = {d.public: draft.head(d.id) for d in known}
            policies = {d.public: d.policy() for d in known}
            touched: set[bytes] = set()
            for job in jobs:
                results.append(await self._plan(tx, job, heads, policies))
                touched.update(o.origin for o in results[-1].plan.outcomes if o.origin)
            now = jobs[-1].now
            seen = [d for o in touched if (d := draft.device(o)) is not None]
            if seen:
                await conn.executemany(
                    "UPDATE devices SET last_seen = ? WHERE id = ?", [(now, d.id) for d in seen]
                )
            for d in seen:
                draft.update(draft.devices[d.public], last_seen=now)
            for r in results:
                for origin, h in r.plan.heads.items():
                    draft.heads[draft.devices[origin].id] = h
        # Durable: now the state everyone reads.
        self.commits += 1
        draft.changed = draft.changed or bool(draft.facts)
        self._applied(draft)
        self._log_quota([o for r in results for o in r.plan.outcomes if o.code == QUOTA], now)
        for r in results:
            origins = {x.origin for x in r.plan.outcomes if x.origin is not None}
            r.heads = {o: self.head_of(o) for o in origins if o in self._mem.devices}
            r.devices = {o: self._mem.devices[o] for o in r.heads}
            r.new_devices = list(r.plan.new_origins)
        return results

    async def _plan(
        self,
        tx: Transaction,
        job: _Job,
        heads: dict[bytes, Head],
        policies: dict[bytes, Device],
    ) -> PushResult:
        """Decide one batch of the group against the heads so far, and write it."""
        ex_list = [c.ex for c in job.checked]
        by_index = {c.ex.index: c for c in job.checked}
        conn, draft = tx.conn, tx.draft
        existing = await tx.existing(ingest.needed_existing(ex_list, heads))
        plan = await _off_loop(
            len(ex_list), ingest.plan, ex_list, heads, existing, policies,
            refuse_unknown=self.refuse_unknown, ledger=draft.ledger,
        )  # fmt: skip
        for origin in plan.new_origins:
            d = await tx.insert_device(origin, "", "laptop", PENDING, job.now)
            policies[origin] = d.policy()

        def rows_of_accepted() -> list[tuple[Any, ...]]:
            rows = []
            for ex in plan.accepted:
                rec, c = ex.record, by_index[ex.index]
                ef = c.facts
                assert rec is not None and ef is not None
                dev = draft.devices[rec.origin].id
                rows.append((
                    dev, rec.seq, rec.hash, rec.raw, job.now, *ef.key, c.flags,
                    ef.users_total_j, ef.numbers, ef.supersedes, ",".join(ef.scans), c.votes,
                ))  # fmt: skip
                draft.facts.append(Facts(dev, rec.seq, ef, split(c.flags), c.votes))
            return rows

        rows = await _off_loop(len(plan.accepted), rows_of_accepted)
        if rows:
            await conn.executemany(
                "INSERT INTO records(dev, seq, hash, raw, received_at, election, form, tps,"
                " flags, users_j, numbers, supersedes, scans, votes)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
        for ex, held in plan.forks:
            assert ex.record is not None
            d = draft.devices[ex.record.origin]
            await conn.execute(
                "INSERT INTO forks(dev, seq, raw, held_raw, detected_at) VALUES (?,?,?,?,?)",
                (d.id, ex.record.seq, ex.record.raw, held, job.now),
            )
            await conn.execute("UPDATE devices SET forked = 1 WHERE id = ?", (d.id,))
            if not d.forked:
                draft.log(
                    logging.ERROR,
                    "FORK: device %s (%s) signed two different entries as seq %d. Both are "
                    "kept as evidence (c1hub status; GET /v1/forks); nothing more is accepted "
                    "from it. Find the laptop holding a copy of its data folder.",
                    d.node_id, d.name or "no name", ex.record.seq,
                )  # fmt: skip
            draft.update(d, forked=True)
            draft.forks[d.id] = draft.forks.get(d.id, 0) + 1
            policies[ex.record.origin] = Device(d.state, True, d.revoked_after_seq)
        heads.update(plan.heads)
        return PushResult(plan)


# -- reading the committed state, and writing inside a transaction -----------------------
