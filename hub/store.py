"""The hub's durable store: one SQLite file, one writer, group commit.

Everything that changes the database goes through ``HubStore``: pushed batches queue up for the
single writer task, which takes every batch waiting, decides each with the sans-IO planner
(``hub.protocol.ingest.plan``) against the in-memory heads, writes them all in ONE transaction,
commits (WAL, synchronous=FULL) and only then answers each pusher. A receipt is therefore never
issued for anything that is not on disk. Smaller writes (enrollment, approval, upstream
confirmations) take the same lock.

In-memory caches (heads, devices, endorsements, the facts derived state needs) are loaded at
start and changed only after a commit succeeds; if a commit fails they are reloaded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import multiprocessing
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite

from hub.protocol import entry, identity, ingest, record, rules, state
from hub.protocol.enroll import Endorsement
from hub.protocol.errors import ProtocolError
from hub.protocol.ingest import APPROVED, PENDING, REVOKED, Device, Examined, Head, Plan
from hub.shared.master import load_master

log = logging.getLogger(__name__)

DB_FILE = "hub.db"

MIGRATIONS: list[str] = [
    # 1: the whole first schema
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
    CREATE TABLE devices (
        id INTEGER PRIMARY KEY,
        public BLOB NOT NULL UNIQUE,
        node_id TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        role TEXT NOT NULL DEFAULT 'laptop',
        state TEXT NOT NULL DEFAULT 'pending',
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        approved_at INTEGER,
        revoked_at INTEGER,
        revoked_after_seq INTEGER NOT NULL DEFAULT 0,
        forked INTEGER NOT NULL DEFAULT 0,
        endorsement BLOB
    );
    CREATE TABLE records (
        id INTEGER PRIMARY KEY,
        dev INTEGER NOT NULL REFERENCES devices(id),
        seq INTEGER NOT NULL,
        hash BLOB NOT NULL,
        raw BLOB NOT NULL,
        received_at INTEGER NOT NULL,
        election TEXT NOT NULL,
        form TEXT NOT NULL,
        tps TEXT NOT NULL,
        flags TEXT NOT NULL,
        users_j INTEGER NOT NULL,
        numbers BLOB NOT NULL,
        supersedes BLOB,
        scans TEXT NOT NULL DEFAULT '',
        votes TEXT NOT NULL DEFAULT '',
        UNIQUE (dev, seq)
    );
    CREATE TABLE forks (
        id INTEGER PRIMARY KEY,
        dev INTEGER NOT NULL REFERENCES devices(id),
        seq INTEGER NOT NULL,
        raw BLOB NOT NULL,
        held_raw BLOB,
        detected_at INTEGER NOT NULL
    );
    CREATE TABLE endorsements (
        device BLOB NOT NULL,
        hub BLOB NOT NULL,
        raw BLOB NOT NULL,
        received_at INTEGER NOT NULL,
        PRIMARY KEY (device, hub)
    );
    CREATE TABLE upstream (
        dev INTEGER PRIMARY KEY REFERENCES devices(id),
        seq INTEGER NOT NULL,
        hash BLOB NOT NULL,
        receipt BLOB NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE TRIGGER records_no_update BEFORE UPDATE ON records
        BEGIN SELECT RAISE(ABORT, 'records are immutable'); END;
    CREATE TRIGGER records_no_delete BEFORE DELETE ON records
        BEGIN SELECT RAISE(ABORT, 'records are immutable'); END;
    CREATE TRIGGER forks_no_change BEFORE UPDATE ON forks
        BEGIN SELECT RAISE(ABORT, 'fork evidence is immutable'); END;
    CREATE TRIGGER forks_no_delete BEFORE DELETE ON forks
        BEGIN SELECT RAISE(ABORT, 'fork evidence is immutable'); END;
    CREATE TABLE upstream_rejections (
        id INTEGER PRIMARY KEY,
        dev INTEGER NOT NULL REFERENCES devices(id),
        seq INTEGER,
        code TEXT NOT NULL,
        reason TEXT NOT NULL,
        at INTEGER NOT NULL
    );
    """,
]


@dataclass(slots=True)
class DeviceRow:
    id: int
    public: bytes
    node_id: str
    name: str
    role: str
    state: str
    first_seen: int
    last_seen: int
    approved_at: int | None
    revoked_at: int | None
    revoked_after_seq: int
    forked: bool
    endorsement: bytes | None  # this node's own endorsement, when it approved the device

    def policy(self) -> Device:
        return Device(self.state, self.forked, self.revoked_after_seq)

    def forward_limit(self, head: int) -> int:
        """Highest seq of this device's log that may be counted and forwarded."""
        if self.forked:
            return 0
        if self.state == APPROVED:
            return head
        if self.state == REVOKED:
            return min(head, self.revoked_after_seq)
        return 0


@dataclass(slots=True)
class Facts:
    """Per stored record: what status, flags and totals need (no raw bytes)."""

    dev: int
    seq: int
    facts: state.EntryFacts
    flags: tuple[str, ...]
    votes: str  # "no:votes,..." per candidate (PPWP, DPD) or party total (DPR, DPRD)


@dataclass(slots=True)
class Checked:
    """A record after the worker checks, with what the store derives from its body."""

    ex: Examined  # body dropped once the values below are derived
    flags: str = ""
    votes: str = ""
    facts: state.EntryFacts | None = None


@dataclass(slots=True)
class PushResult:
    plan: Plan
    heads: dict[bytes, Head] = field(default_factory=dict)  # heads of every origin touched


@dataclass(slots=True)
class Confirmed:
    seq: int
    hash: bytes
    receipt: bytes
    at: int


@dataclass(slots=True)
class Rejection:
    dev: int
    seq: int | None
    code: str
    reason: str
    at: int


@dataclass(slots=True)
class _Job:
    checked: Sequence[Checked]
    endorsements: Sequence[Endorsement]
    now: int
    future: asyncio.Future[PushResult]


class StoreUnavailable(ProtocolError):
    """The hub's database failed; pushes are refused (HTTP 503) until a restart."""

    code = "unavailable"


def votes_of(body: dict[str, Any]) -> str:
    if "suara" in body:
        items = body["suara"].items()
    else:
        items = ((k, p["jumlah"]) for k, p in body["partai"].items())
    return ",".join(f"{k}:{v}" for k, v in items)


def examine(index: int, raw: bytes, master: rules.TpsMaster | None) -> Checked:
    """CPU-heavy checks for one record, run off the event loop: decode, verify, schema, flags,
    and everything the writer needs from the body (the body itself is dropped, so the result
    is small to hand back from a worker process)."""
    ex = ingest.examine(index, raw)
    if ex.body is None or ex.record is None:
        return Checked(ex)
    body = ex.body
    flags = ",".join(rules.rule_ids(rules.check(body, master)))
    return Checked(
        ingest.Examined(index, ex.record, None, None), flags, votes_of(body), _facts_of(ex)
    )


EXAMINE_CHUNK = 256
_worker_master: rules.TpsMaster | None = None


def init_worker(wilayah: str | None) -> None:
    """Initializer of the examine worker processes: load the master once per process."""
    global _worker_master

    _worker_master = load_master(wilayah) if wilayah else None


def make_pool(wilayah: Path | None, kind: str = "processes", workers: int = 2) -> Executor:
    """The executor that examines pushed records: worker *processes* by default (the Python
    part of the checks holds the GIL, so threads would serialise it), each with its own copy of
    the master; ``kind="threads"`` for measuring the difference."""
    if kind == "threads":
        return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="c1hub-examine")
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=init_worker,
        initargs=(str(wilayah) if wilayah else None,),
    )


async def warm_pool(pool: Executor, workers: int = 2) -> None:
    """Start the pool's worker processes now (they import the checker and load the master),
    so the first big push does not pay for it."""
    if isinstance(pool, ProcessPoolExecutor):
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(pool, examine_chunk, ()) for _ in range(workers))
        )


# What a worker process sends back per record: small tuples of derived values, not objects
# (pickling full records costs more than checking them). The parent still holds the raw bytes.
Wire = tuple[Any, ...]


def examine_chunk(chunk: Sequence[bytes]) -> list[Wire]:
    """``examine`` a slice of a batch inside a worker process (master from ``init_worker``)."""
    out: list[Wire] = []
    for raw in chunk:
        c = examine(0, raw, _worker_master)
        if c.ex.error is not None:
            out.append(("error", type(c.ex.error), c.ex.error.message, c.ex.error.code))
        else:
            f = c.facts
            assert f is not None
            out.append(("ok", c.flags, c.votes, f.key, f.numbers, f.supersedes, f.users_total_j,
                        f.scans))  # fmt: skip
    return out


def _from_wire(index: int, raw: bytes, w: Wire) -> Checked:
    """Rebuild a worker's verdict around the raw bytes the parent holds."""
    try:
        rec: record.Record | None = record.decode(raw)
    except ProtocolError as exc:  # the worker saw the same: bytes are not a record
        return Checked(ingest.Examined(index, None, None, exc))
    assert rec is not None
    if w[0] == "error":
        err: ProtocolError = w[1](w[2], code=w[3])
        return Checked(ingest.Examined(index, rec, None, err))
    _, flags, votes, key, numbers, sup, users_j, scans = w
    facts = state.EntryFacts(rec.hash, rec.origin, key, numbers, sup, users_j, scans)
    return Checked(ingest.Examined(index, rec, None, None), flags, votes, facts)


async def examine_batch(
    pool: Executor | None, raws: Sequence[bytes], master: rules.TpsMaster | None
) -> list[Checked]:
    """``examine`` every record of a batch on the pool's workers, in two halves so both cores
    work. A process pool uses its workers' own master (``init_worker``); a thread pool or no
    pool uses ``master``. Small batches run inline: shipping them costs more than it saves."""
    if pool is None or len(raws) <= EXAMINE_CHUNK // 4:
        return [examine(i, raw, master) for i, raw in enumerate(raws)]
    loop = asyncio.get_running_loop()
    n = max(EXAMINE_CHUNK, (len(raws) + 1) // 2)
    if isinstance(pool, ProcessPoolExecutor):
        starts = range(0, len(raws), n)
        wires = await asyncio.gather(
            *(loop.run_in_executor(pool, examine_chunk, raws[i : i + n]) for i in starts)
        )
        return [
            _from_wire(i + j, raws[i + j], w)
            for i, part in zip(starts, wires, strict=True)
            for j, w in enumerate(part)
        ]
    else:

        def work(start: int, chunk: Sequence[bytes]) -> list[Checked]:
            return [examine(start + i, raw, master) for i, raw in enumerate(chunk)]

        parts = [
            loop.run_in_executor(pool, work, i, raws[i : i + n]) for i in range(0, len(raws), n)
        ]
    out: list[Checked] = []
    for part in await asyncio.gather(*parts):
        out.extend(part)
    return out


def _facts_of(ex: Examined) -> state.EntryFacts:
    assert ex.record is not None and ex.body is not None
    body = ex.body
    sup = body.get("supersedes")
    return state.EntryFacts(
        hash=ex.record.hash,
        origin=ex.record.origin,
        key=entry.key(body),
        numbers=hashlib.sha256(entry.numbers(body)).digest()[:16],  # compact, equal iff agree
        supersedes=bytes.fromhex(sup) if sup else None,
        users_total_j=body["pengguna_total"]["j"],
        scans=tuple(body["scans"]),
    )


def _split(text: str) -> tuple[str, ...]:
    return tuple(x for x in text.split(",") if x)


@dataclass(slots=True)
class StoreView:
    """A consistent copy of what derived state reads, cheap to take on the event loop and
    safe to compute on in another thread while the store keeps changing."""

    devices: dict[bytes, DeviceRow]
    devices_by_id: dict[int, DeviceRow]
    heads: dict[int, Head]
    counts: dict[int, int]
    facts: list[Facts]
    endorsements: dict[bytes, dict[bytes, bytes]]
    fork_count: int

    def is_accepted(self, f: Facts) -> bool:
        """Accepted = counted and forwardable; otherwise held (pending, forked, post-revoke)."""
        d = self.devices_by_id[f.dev]
        return f.seq <= d.forward_limit(f.seq)


class HubStore:
    """Owner of hub.db: ``store = await HubStore.open(dir)`` ... ``await store.close()``."""

    def __init__(self, db: aiosqlite.Connection, path: Path, *, refuse_unknown: bool = False):
        self._db = db
        self.path = path
        self.refuse_unknown = refuse_unknown
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()
        self.heads: dict[int, Head] = {}
        self.devices: dict[bytes, DeviceRow] = {}
        self.devices_by_id: dict[int, DeviceRow] = {}
        self.endorsements: dict[bytes, dict[bytes, bytes]] = {}  # device -> hub -> raw
        self.facts: list[Facts] = []
        self.counts: dict[int, int] = {}  # dev -> records stored
        self.confirmed: dict[int, Confirmed] = {}  # dev -> upstream's newest receipt
        self.rejections: dict[int, Rejection] = {}  # dev -> upstream's latest refusal
        self.fork_count = 0
        self.commits = 0
        self.records_stored = 0
        self.max_group = 256  # batches per transaction
        self.changed = asyncio.Event()  # set after every commit that stored records
        self.broken: BaseException | None = None  # set when the writer cannot go on

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def open(cls, data_dir: Path, *, refuse_unknown: bool = False) -> HubStore:
        path = data_dir / DB_FILE
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=FULL")
            await db.execute("PRAGMA foreign_keys=ON")
            await db.execute("PRAGMA busy_timeout=10000")
            await _migrate(db)
            store = cls(db, path, refuse_unknown=refuse_unknown)
            await store._load()
        except BaseException:
            await db.close()
            raise
        store._writer = asyncio.create_task(store._write_loop(), name="hub-store-writer")
        return store

    async def close(self) -> None:
        if self._writer is not None:
            await self._queue.put(None)
            await self._writer
            self._writer = None
        await self._db.close()

    async def _rows(self, sql: str, params: Iterable[Any] = ()) -> AsyncIterator[sqlite3.Row]:
        async with self._db.execute(sql, tuple(params)) as cur:
            async for row in cur:
                yield row

    async def _load(self) -> None:
        self.devices.clear()
        self.devices_by_id.clear()
        async for r in self._rows(
            "SELECT id, public, node_id, name, role, state, first_seen, last_seen, approved_at,"
            " revoked_at, revoked_after_seq, forked, endorsement FROM devices"
        ):
            d = DeviceRow(*r[:11], bool(r[11]), r[12])  # type: ignore[call-arg]
            self.devices[d.public] = d
            self.devices_by_id[d.id] = d
        self.endorsements = {}
        async for dev, hub, raw in self._rows("SELECT device, hub, raw FROM endorsements"):
            self.endorsements.setdefault(dev, {})[hub] = raw
        self.heads = {}
        async for dev, seq, h in self._rows(
            "SELECT r.dev, r.seq, r.hash FROM records r JOIN"
            " (SELECT dev, MAX(seq) AS m FROM records GROUP BY dev) h"
            " ON r.dev = h.dev AND r.seq = h.m"
        ):
            self.heads[dev] = Head(seq, h)
        self.counts = {}
        self.facts = []
        async for dev, seq, h, el, fo, tps, flags, uj, nums, sup, scans, votes in self._rows(
            "SELECT dev, seq, hash, election, form, tps, flags, users_j, numbers, supersedes,"
            " scans, votes FROM records ORDER BY id"
        ):
            self.counts[dev] = self.counts.get(dev, 0) + 1
            origin = self.devices_by_id[dev].public
            ef = state.EntryFacts(h, origin, (el, fo, tps), nums, sup, uj, _split(scans))
            self.facts.append(Facts(dev, seq, ef, _split(flags), votes))
        self.records_stored = len(self.facts)
        self.confirmed = {}
        async for dev, seq, h, rc, at in self._rows(
            "SELECT dev, seq, hash, receipt, at FROM upstream"
        ):
            self.confirmed[dev] = Confirmed(seq, h, rc, at)
        self.rejections = {}
        async for dev, seq, code, reason, at in self._rows(
            "SELECT dev, seq, code, reason, at FROM upstream_rejections ORDER BY id"
        ):
            self.rejections[dev] = Rejection(dev, seq, code, reason, at)
        async for (n,) in self._rows("SELECT COUNT(*) FROM forks"):
            self.fork_count = int(n)

    # -- meta --------------------------------------------------------------------------------

    async def get_meta(self, key: str) -> bytes | None:
        async for (value,) in self._rows("SELECT value FROM meta WHERE key = ?", (key,)):
            return bytes(value)
        return None

    async def set_meta(self, key: str, value: bytes) -> None:
        async with self._write_lock:
            await self._db.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- devices -----------------------------------------------------------------------------

    def head_of(self, public: bytes) -> Head:
        d = self.devices.get(public)
        return self.heads.get(d.id, Head()) if d else Head()

    def snapshot(self) -> StoreView:
        by_id = {i: dataclasses.replace(d) for i, d in self.devices_by_id.items()}
        return StoreView(
            devices={d.public: d for d in by_id.values()},
            devices_by_id=by_id,
            heads=dict(self.heads),
            counts=dict(self.counts),
            facts=list(self.facts),
            endorsements={k: dict(v) for k, v in self.endorsements.items()},
            fork_count=self.fork_count,
        )

    def find_device(self, node_id: str) -> DeviceRow | None:
        want = node_id.strip()
        for d in self.devices.values():
            if d.node_id == want.upper() or d.public.hex() == want.lower():
                return d
        return None

    async def enroll(self, public: bytes, name: str, role: str, now: int) -> DeviceRow:
        """First contact puts a device in pending; a known device keeps its state."""
        async with self._write_lock:
            d = self.devices.get(public)
            if d is None:
                return await self._new_device(public, name, role, PENDING, now)
            await self._db.execute("UPDATE devices SET last_seen = ? WHERE id = ?", (now, d.id))
            d.last_seen = now
            if not d.name and name:
                await self._db.execute("UPDATE devices SET name = ? WHERE id = ?", (name, d.id))
                d.name = name
            if d.role != role:
                if d.state != PENDING or d.approved_at is not None:
                    # A role is what the coordinator approved: an approved laptop must never
                    # turn itself into a hub (hubs vouch for other devices).
                    log.warning(
                        "device %s asked to be a %s but was approved as a %s: refused; enroll "
                        "it under a new key instead", d.node_id, role, d.role,
                    )  # fmt: skip
                else:  # still pending: the coordinator sees the new role before approving
                    await self._db.execute("UPDATE devices SET role = ? WHERE id = ?", (role, d.id))
                    d.role = role
            return d

    async def _new_device(
        self, public: bytes, name: str, role: str, st: str, now: int, via: str | None = None
    ) -> DeviceRow:
        node_id = identity.fingerprint(public)
        cur = await self._db.execute(
            "INSERT INTO devices(public, node_id, name, role, state, first_seen, last_seen,"
            " approved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (public, node_id, name, role, st, now, now, now if st == APPROVED else None),
        )
        assert cur.lastrowid is not None
        d = DeviceRow(
            cur.lastrowid, public, node_id, name, role, st, now, now,
            now if st == APPROVED else None, None, 0, False, None,
        )  # fmt: skip
        self.devices[public] = d
        self.devices_by_id[d.id] = d
        if st == PENDING and via is not None:
            log.info(
                "%s %s (%s) arrives through hub %s, which is pending here: approving that hub "
                "approves it too", role, node_id, name or "no name", via,
            )  # fmt: skip
        elif st == PENDING:
            log.warning(
                "new %s %s (%s) is pending: check its comparison code (c1hub devices --data %s), "
                "then run `c1hub approve --data %s %s`",
                role, node_id, name or "no name", self.path.parent, self.path.parent, node_id,
            )  # fmt: skip
        return d

    async def set_state(
        self, d: DeviceRow, new: str, now: int, endorsement: bytes | None = None
    ) -> DeviceRow:
        async with self._write_lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                if new == APPROVED:
                    await self._approve(d, now, endorsement)
                elif new == REVOKED:
                    await self._revoke(d, now)
                else:
                    raise ValueError(new)
                await self._db.execute("COMMIT")
            except BaseException:
                await self._db.execute("ROLLBACK")
                await self._load()
                raise
        self.changed.set()
        return d

    async def _revoke(self, d: DeviceRow, now: int) -> None:
        """Revoke ``d`` after its current head and, for a hub, every device approved here only
        through that hub's word (symmetric with ``_approve``): a stolen hub stops vouching."""
        cutoff = self.heads.get(d.id, Head()).seq if d.state == APPROVED else 0
        await self._db.execute(
            "UPDATE devices SET state = 'revoked', revoked_at = ?, revoked_after_seq = ?"
            " WHERE id = ?",
            (now, cutoff, d.id),
        )
        d.state, d.revoked_at, d.revoked_after_seq = REVOKED, now, cutoff
        if d.role != "hub":
            return
        for public, by in self.endorsements.items():
            other = self.devices.get(public)
            if other is None or other.state != APPROVED or d.public not in by:
                continue
            if other.endorsement is not None:
                continue  # approved here directly too: that approval stands
            still = [h for h in by if h in self.devices and self.devices[h].state == APPROVED]
            if not still:
                log.warning(
                    "revoking %s %s too: it was approved only through hub %s",
                    other.role, other.node_id, d.node_id,
                )  # fmt: skip
                await self._revoke(other, now)

    async def _approve(self, d: DeviceRow, now: int, endorsement: bytes | None) -> None:
        """Approve ``d`` and, transitively, every pending device an approved hub vouches for."""
        await self._db.execute(
            "UPDATE devices SET state = 'approved', approved_at = ?,"
            " endorsement = COALESCE(?, endorsement), revoked_at = NULL WHERE id = ?",
            (now, endorsement, d.id),
        )
        d.state, d.approved_at, d.revoked_at = APPROVED, now, None
        if endorsement is not None:
            d.endorsement = endorsement
        if d.role == "hub":
            for dev_public, by in self.endorsements.items():
                other = self.devices.get(dev_public)
                if d.public in by and other is not None and other.state == PENDING:
                    await self._approve(other, now, None)

    # -- records -----------------------------------------------------------------------------

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
                async with self._write_lock:
                    results = await self._commit(jobs)
            except Exception as exc:
                log.exception("commit failed; reloading state from the database")
                for j in jobs:  # answer first: the reload below may fail too
                    if not j.future.done():
                        j.future.set_exception(exc)
                try:
                    if self._db.in_transaction:
                        await self._db.execute("ROLLBACK")
                    await self._load()
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

    async def _endorse(self, endorsements: Sequence[Endorsement], now: int) -> None:
        """Take endorsements that chain to a hub known here; ignore the rest (a later stream
        may bring the missing link). Several passes, so a chain may arrive in any order."""
        todo = [e for e in endorsements if self.endorsements.get(e.device, {}).get(e.hub) != e.raw]
        progress = True
        while todo and progress:
            progress = False
            rest = []
            for e in todo:
                hub = self.devices.get(e.hub)
                if hub is None or hub.role != "hub" or hub.forked:
                    rest.append(e)
                    continue
                await self._db.execute(
                    "INSERT OR REPLACE INTO endorsements(device, hub, raw, received_at)"
                    " VALUES (?, ?, ?, ?)",
                    (e.device, e.hub, e.raw, now),
                )
                self.endorsements.setdefault(e.device, {})[e.hub] = e.raw
                d = self.devices.get(e.device)
                vouched = hub.state == APPROVED
                if d is None:
                    d = await self._new_device(
                        e.device,
                        e.name,
                        e.role,
                        APPROVED if vouched else PENDING,
                        now,
                        via=hub.node_id,
                    )
                elif vouched and d.state == PENDING:
                    await self._approve(d, now, None)
                progress = True
            todo = rest

    async def _commit(self, jobs: list[_Job]) -> list[PushResult]:
        db = self._db
        await db.execute("BEGIN IMMEDIATE")
        for job in jobs:
            if job.endorsements:
                await self._endorse(job.endorsements, job.now)
        heads = {d.public: self.heads.get(d.id, Head()) for d in self.devices.values()}
        policies = {d.public: d.policy() for d in self.devices.values()}
        results: list[PushResult] = []
        new_facts: list[Facts] = []
        touched: set[bytes] = set()
        for job in jobs:
            ex_list = [c.ex for c in job.checked]
            by_index = {c.ex.index: c for c in job.checked}
            existing = await self._existing(ingest.needed_existing(ex_list, heads))
            plan = ingest.plan(
                ex_list, heads, existing, policies, refuse_unknown=self.refuse_unknown
            )
            for origin in plan.new_origins:
                d = await self._new_device(origin, "", "laptop", PENDING, job.now)
                policies[origin] = d.policy()
            rows = []
            for ex in plan.accepted:
                rec = ex.record
                c = by_index[ex.index]
                ef = c.facts
                assert rec is not None and ef is not None
                d = self.devices[rec.origin]
                rows.append(
                    (
                        d.id, rec.seq, rec.hash, rec.raw, job.now, *ef.key, c.flags,
                        ef.users_total_j, ef.numbers, ef.supersedes, ",".join(ef.scans), c.votes,
                    )
                )  # fmt: skip
                new_facts.append(Facts(d.id, rec.seq, ef, _split(c.flags), c.votes))
            if rows:
                await db.executemany(
                    "INSERT INTO records(dev, seq, hash, raw, received_at, election, form, tps,"
                    " flags, users_j, numbers, supersedes, scans, votes)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    rows,
                )
            for ex, held in plan.forks:
                assert ex.record is not None
                d = self.devices[ex.record.origin]
                await db.execute(
                    "INSERT INTO forks(dev, seq, raw, held_raw, detected_at) VALUES (?,?,?,?,?)",
                    (d.id, ex.record.seq, ex.record.raw, held, job.now),
                )
                await db.execute("UPDATE devices SET forked = 1 WHERE id = ?", (d.id,))
                policies[ex.record.origin] = Device(d.state, True, d.revoked_after_seq)
            touched.update(o.origin for o in plan.outcomes if o.origin is not None)
            heads.update(plan.heads)
            results.append(PushResult(plan))
        now = jobs[-1].now
        touched_ids = [(now, self.devices[o].id) for o in touched if o in self.devices]
        if touched_ids:
            await db.executemany("UPDATE devices SET last_seen = ? WHERE id = ?", touched_ids)
        await db.execute("COMMIT")

        # Durable: now update the in-memory view.
        self.commits += 1
        for origin, h in heads.items():
            known = self.devices.get(origin)
            if known is not None and h.seq:
                self.heads[known.id] = h
        for r in results:
            for ex, _held in r.plan.forks:
                assert ex.record is not None
                d = self.devices[ex.record.origin]
                if not d.forked:
                    log.error(
                        "FORK: device %s (%s) signed two different entries as seq %d. Both are "
                        "kept as evidence (c1hub status; GET /v1/forks); nothing more is "
                        "accepted from it. Find the laptop holding a copy of its data folder.",
                        d.node_id, d.name or "no name", ex.record.seq,
                    )  # fmt: skip
                d.forked = True
                self.fork_count += 1
        for f in new_facts:
            self.counts[f.dev] = self.counts.get(f.dev, 0) + 1
        self.facts.extend(new_facts)
        self.records_stored += len(new_facts)
        for _, dev_id in touched_ids:
            self.devices_by_id[dev_id].last_seen = now
        for r in results:
            origins = {x.origin for x in r.plan.outcomes if x.origin is not None}
            r.heads = {o: self.head_of(o) for o in origins if o in self.devices}
        if new_facts:
            self.changed.set()
        return results

    async def _existing(self, pairs: list[tuple[bytes, int]]) -> dict[tuple[bytes, int], bytes]:
        """Raw bytes held for (origin, seq) pairs: one range query per origin (replays are the
        normal recovery path and must not cost a query per record inside the transaction)."""
        by_origin: dict[bytes, list[int]] = {}
        for origin, seq in pairs:
            by_origin.setdefault(origin, []).append(seq)
        out: dict[tuple[bytes, int], bytes] = {}
        for origin, seqs in by_origin.items():
            want = set(seqs)
            async for seq, raw in self._rows(
                "SELECT seq, raw FROM records WHERE dev = ? AND seq BETWEEN ? AND ?",
                (self.devices[origin].id, min(seqs), max(seqs)),
            ):
                if seq in want:
                    out[(origin, seq)] = bytes(raw)
        return out

    def knows_endorsement(self, raw: bytes) -> bool:
        """True if these endorsement bytes are already held (no need to check them again)."""
        return any(raw in by.values() for by in self.endorsements.values()) or any(
            d.endorsement == raw for d in self.devices.values()
        )

    async def _raw(self, dev: int, seq: int) -> bytes | None:
        async for (raw,) in self._rows(
            "SELECT raw FROM records WHERE dev = ? AND seq = ?", (dev, seq)
        ):
            return bytes(raw)
        return None

    async def record_raw(self, public: bytes, seq: int) -> bytes | None:
        d = self.devices.get(public)
        return None if d is None else await self._raw(d.id, seq)

    async def records_after(self, dev: int, after_seq: int, limit: int) -> list[bytes]:
        """Up to ``limit`` raw records of ``dev``'s log after ``after_seq``, in seq order."""
        return [
            bytes(raw)
            async for (raw,) in self._rows(
                "SELECT raw FROM records WHERE dev = ? AND seq > ? ORDER BY seq LIMIT ?",
                (dev, after_seq, limit),
            )
        ]

    async def received_at(self, dev: int, seq: int) -> int | None:
        async for (at,) in self._rows(
            "SELECT received_at FROM records WHERE dev = ? AND seq = ?", (dev, seq)
        ):
            return int(at)
        return None

    async def iter_records(self) -> AsyncIterator[tuple[DeviceRow, int, bytes]]:
        """Every stored record, by device then seq, streamed (exports)."""
        async for dev, seq, raw in self._rows(
            "SELECT dev, seq, raw FROM records ORDER BY dev, seq"
        ):
            yield self.devices_by_id[dev], seq, bytes(raw)

    async def fork_evidence(self) -> list[tuple[int, int, bytes, bytes | None]]:
        """(dev, seq, evidence raw, held raw) of every fork, for forwarding upstream."""
        return [
            (dev, seq, bytes(raw), bytes(held) if held else None)
            async for dev, seq, raw, held in self._rows(
                "SELECT dev, seq, raw, held_raw FROM forks ORDER BY id"
            )
        ]

    async def forks(self) -> list[dict[str, Any]]:
        out = []
        async for dev, seq, raw, held, at in self._rows(
            "SELECT dev, seq, raw, held_raw, detected_at FROM forks ORDER BY id"
        ):
            d = self.devices_by_id[dev]
            out.append(
                {
                    "device": d.node_id,
                    "name": d.name,
                    "seq": seq,
                    "detected_at": at,
                    "evidence": bytes(raw).hex(),
                    "held": bytes(held).hex() if held else None,
                }
            )
        return out

    # -- upstream bookkeeping ----------------------------------------------------------------

    def backlog(self) -> int:
        """Records the upstream does not hold yet: forward limit minus confirmed, summed."""
        n = 0
        for dev, d in self.devices_by_id.items():
            limit = d.forward_limit(self.heads[dev].seq) if dev in self.heads else 0
            done = self.confirmed[dev].seq if dev in self.confirmed else 0
            n += max(limit - done, 0)
        return n

    def chain_for(self, publics: Iterable[bytes]) -> list[bytes]:
        """Endorsements an upstream needs to link ``publics`` to this node: each device's own
        endorsement (approved here) or the ones received for it, then their hubs', and so on."""
        out: dict[bytes, None] = {}
        seen: set[bytes] = set()
        todo = list(publics)
        while todo:
            p = todo.pop()
            if p in seen:
                continue
            seen.add(p)
            d = self.devices.get(p)
            if d is not None and d.endorsement is not None:
                out[d.endorsement] = None
            for hub, raw in self.endorsements.get(p, {}).items():
                h = self.devices.get(hub)
                if h is not None and h.state == APPROVED:
                    out[raw] = None
                    todo.append(hub)
        return list(out)

    async def confirm(self, dev: int, seq: int, hash_: bytes, receipt: bytes, now: int) -> None:
        """Record upstream's receipt for ``dev`` up to ``seq`` (only ever moves forward)."""
        old = self.confirmed.get(dev)
        if old is not None and old.seq >= seq:
            return
        async with self._write_lock:
            await self._db.execute(
                "INSERT INTO upstream(dev, seq, hash, receipt, at) VALUES (?,?,?,?,?)"
                " ON CONFLICT(dev) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,"
                " receipt = excluded.receipt, at = excluded.at WHERE excluded.seq > upstream.seq",
                (dev, seq, hash_, receipt, now),
            )
        self.confirmed[dev] = Confirmed(seq, hash_, receipt, now)
        if dev in self.rejections and self.rejections[dev].seq is not None:
            rej_seq = self.rejections[dev].seq
            if rej_seq is not None and rej_seq <= seq:
                del self.rejections[dev]

    async def unconfirm(self, dev: int, seq: int, hash_: bytes) -> None:
        """Move ``dev``'s confirmation back to ``seq``: upstream lost what it had signed for.
        The row keeps upstream's old receipt as evidence of the broken promise."""
        old = self.confirmed.get(dev)
        if old is None or old.seq <= seq:
            return
        async with self._write_lock:
            await self._db.execute(
                "UPDATE upstream SET seq = ?, hash = ? WHERE dev = ?", (seq, hash_, dev)
            )
        self.confirmed[dev] = Confirmed(seq, hash_, old.receipt, old.at)

    async def reject_upstream(self, r: Rejection) -> None:
        prev = self.rejections.get(r.dev)
        if prev is not None and (prev.seq, prev.code, prev.reason) == (r.seq, r.code, r.reason):
            return
        async with self._write_lock:
            await self._db.execute(
                "INSERT INTO upstream_rejections(dev, seq, code, reason, at) VALUES (?,?,?,?,?)",
                (r.dev, r.seq, r.code, r.reason, r.at),
            )
        self.rejections[r.dev] = r


async def _migrate(db: aiosqlite.Connection) -> None:
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    version = int(row[0]) if row else 0
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"hub.db is at schema version {version}, newer than this c1hub knows "
            f"({len(MIGRATIONS)}); upgrade c1hub"
        )
    for n in range(version, len(MIGRATIONS)):
        try:
            await db.execute("BEGIN IMMEDIATE")
            for stmt in _statements(MIGRATIONS[n]):
                await db.execute(stmt)
            await db.execute(f"PRAGMA user_version = {n + 1}")
            await db.execute("COMMIT")
        except sqlite3.Error:
            await db.execute("ROLLBACK")
            raise


def _statements(script: str) -> list[str]:
    """Split a migration into complete SQL statements (triggers hold ';' inside)."""
    out, buf = [], ""
    for part in script.split(";"):
        buf += part + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \n;"):
                out.append(buf.strip())
            buf = ""
    return out
