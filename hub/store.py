"""The hub's durable store: one SQLite file, one writer, group commit.

Everything that changes the database goes through ``HubStore``'s single writer task: pushed
batches queue up, the writer takes every batch waiting, decides each one with the sans-IO
planner (``hub.protocol.ingest.plan``) against the in-memory heads, writes them all in ONE
transaction, commits (WAL, synchronous=FULL) and only then answers each pusher. A receipt is
therefore never issued for anything that is not on disk.

In-memory caches (heads, devices, the facts derived state needs) are loaded at start and updated
only after a commit succeeds; if a commit fails they are reloaded from the database.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite

from hub.protocol import entry, identity, ingest, rules, state
from hub.protocol.ingest import APPROVED, PENDING, REVOKED, Device, Examined, Head, Plan

log = logging.getLogger(__name__)

DB_FILE = "hub.db"

MIGRATIONS: list[str] = [
    # 1: devices, records, forks, meta
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
    endorsement: bytes | None

    def policy(self) -> Device:
        return Device(self.state, self.forked, self.revoked_after_seq)


@dataclass(slots=True)
class Facts:
    """Per accepted record: what status, flags and totals need (no raw bytes)."""

    dev: int
    seq: int
    facts: state.EntryFacts
    flags: tuple[str, ...]


@dataclass(slots=True)
class PushResult:
    plan: Plan
    heads: dict[bytes, Head] = field(default_factory=dict)  # heads of every origin touched


@dataclass(slots=True)
class _Job:
    examined: Sequence[tuple[Examined, str]]  # (examined record, its flags)
    now: int
    future: asyncio.Future[PushResult]


def examine(index: int, raw: bytes, master: rules.TpsMaster | None) -> tuple[Examined, str]:
    """CPU-heavy checks for one record, run in worker threads: decode, verify, schema, flags."""
    ex = ingest.examine(index, raw)
    flags = ",".join(rules.rule_ids(rules.check(ex.body, master))) if ex.body else ""
    return ex, flags


def _facts_of(ex: Examined) -> state.EntryFacts:
    assert ex.record is not None and ex.body is not None
    body = ex.body
    sup = body.get("supersedes")
    return state.EntryFacts(
        hash=ex.record.hash,
        origin=ex.record.origin,
        key=entry.key(body),
        numbers=entry.numbers(body),
        supersedes=bytes.fromhex(sup) if sup else None,
        users_total_j=body["pengguna_total"]["j"],
        scans=tuple(body["scans"]),
    )


class HubStore:
    """Owner of hub.db. Use ``async with HubStore.open(dir) as store``."""

    def __init__(self, db: aiosqlite.Connection, path: Path):
        self._db = db
        self.path = path
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()
        self.heads: dict[int, Head] = {}
        self.devices: dict[bytes, DeviceRow] = {}
        self.devices_by_id: dict[int, DeviceRow] = {}
        self.facts: list[Facts] = []
        self.held_counts: dict[int, int] = {}  # dev -> records (all), for held accounting
        self.fork_count = 0
        self.commits = 0
        self.max_group = 256  # batches per transaction

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def open(cls, data_dir: Path) -> HubStore:
        path = data_dir / DB_FILE
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=FULL")
            await db.execute("PRAGMA foreign_keys=ON")
            await db.execute("PRAGMA busy_timeout=10000")
            await _migrate(db)
            store = cls(db, path)
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

    async def __aenter__(self) -> HubStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _load(self) -> None:
        self.devices.clear()
        self.devices_by_id.clear()
        async with self._db.execute(
            "SELECT id, public, node_id, name, role, state, first_seen, last_seen, approved_at,"
            " revoked_at, revoked_after_seq, forked, endorsement FROM devices"
        ) as cur:
            async for r in cur:
                d = DeviceRow(*r[:11], bool(r[11]), r[12])  # type: ignore[call-arg]
                self.devices[d.public] = d
                self.devices_by_id[d.id] = d
        self.heads = {}
        async with self._db.execute(
            "SELECT r.dev, r.seq, r.hash FROM records r JOIN"
            " (SELECT dev, MAX(seq) AS m FROM records GROUP BY dev) h"
            " ON r.dev = h.dev AND r.seq = h.m"
        ) as cur:
            async for dev, seq, h in cur:
                self.heads[dev] = Head(seq, h)
        self.held_counts = {}
        self.facts = []
        async with self._db.execute(
            "SELECT dev, seq, hash, election, form, tps, flags, users_j, numbers, supersedes,"
            " scans FROM records ORDER BY id"
        ) as cur:
            async for dev, seq, h, el, fo, tps, flags, uj, nums, sup, scans in cur:
                self.held_counts[dev] = self.held_counts.get(dev, 0) + 1
                origin = self.devices_by_id[dev].public
                self.facts.append(
                    Facts(
                        dev,
                        seq,
                        state.EntryFacts(
                            h,
                            origin,
                            (el, fo, tps),
                            nums,
                            sup,
                            uj,
                            tuple(s for s in scans.split(",") if s),
                        ),
                        tuple(f for f in flags.split(",") if f),
                    )
                )
        (self.fork_count,) = await (await self._db.execute("SELECT COUNT(*) FROM forks")).fetchone()  # type: ignore[misc]

    # -- meta --------------------------------------------------------------------------------

    async def get_meta(self, key: str) -> bytes | None:
        async with self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)) as cur:
            row = await cur.fetchone()
        return None if row is None else bytes(row[0])

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

    def is_accepted(self, f: Facts) -> bool:
        """Accepted = counted and forwardable; otherwise held (pending, forked, post-revoke)."""
        d = self.devices_by_id[f.dev]
        if d.forked:
            return False
        if d.state == APPROVED:
            return True
        return d.state == REVOKED and f.seq <= d.revoked_after_seq

    async def enroll(self, public: bytes, name: str, role: str, now: int) -> DeviceRow:
        """First contact puts a device in pending; a known device keeps its state."""
        async with self._write_lock:
            d = self.devices.get(public)
            if d is not None:
                await self._db.execute("UPDATE devices SET last_seen = ? WHERE id = ?", (now, d.id))
                d.last_seen = now
                if not d.name and name:
                    await self._db.execute("UPDATE devices SET name = ? WHERE id = ?", (name, d.id))
                    d.name = name
                return d
            return await self._new_device(public, name, role, now)

    async def _new_device(self, public: bytes, name: str, role: str, now: int) -> DeviceRow:
        cur = await self._db.execute(
            "INSERT INTO devices(public, node_id, name, role, state, first_seen, last_seen)"
            " VALUES (?, ?, ?, ?, 'pending', ?, ?)",
            (public, identity.fingerprint(public), name, role, now, now),
        )
        assert cur.lastrowid is not None
        d = DeviceRow(
            cur.lastrowid, public, identity.fingerprint(public), name, role, PENDING,
            now, now, None, None, 0, False, None,
        )  # fmt: skip
        self.devices[public] = d
        self.devices_by_id[d.id] = d
        log.warning(
            "new device %s (%s) is pending: approve it with `c1hub approve %s` after comparing "
            "the code on both screens",
            d.node_id, name or "no name", d.node_id,
        )  # fmt: skip
        return d

    def find_device(self, node_id: str) -> DeviceRow | None:
        want = node_id.strip().upper()
        for d in self.devices.values():
            if d.node_id == want or d.public.hex() == node_id.strip().lower():
                return d
        return None

    async def set_state(
        self, d: DeviceRow, new: str, now: int, endorsement: bytes | None = None
    ) -> DeviceRow:
        async with self._write_lock:
            if new == APPROVED:
                await self._db.execute(
                    "UPDATE devices SET state = 'approved', approved_at = ?, endorsement = ?,"
                    " revoked_at = NULL WHERE id = ?",
                    (now, endorsement, d.id),
                )
                d.state, d.approved_at, d.endorsement, d.revoked_at = (
                    APPROVED,
                    now,
                    endorsement,
                    None,
                )
            elif new == REVOKED:
                cutoff = self.heads.get(d.id, Head()).seq if d.state == APPROVED else 0
                await self._db.execute(
                    "UPDATE devices SET state = 'revoked', revoked_at = ?, revoked_after_seq = ?"
                    " WHERE id = ?",
                    (now, cutoff, d.id),
                )
                d.state, d.revoked_at, d.revoked_after_seq = REVOKED, now, cutoff
            else:
                raise ValueError(new)
        return d

    # -- records -----------------------------------------------------------------------------

    async def push(self, examined: Sequence[tuple[Examined, str]], now: int) -> PushResult:
        """Queue a batch for the writer; returns after it is durably committed (or refused)."""
        fut: asyncio.Future[PushResult] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(examined, now, fut))
        return await fut

    async def _write_loop(self) -> None:
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
                try:
                    await self._db.rollback()
                finally:
                    await self._load()
                for j in jobs:
                    if not j.future.done():
                        j.future.set_exception(exc)
            else:
                for j, r in zip(jobs, results, strict=True):
                    if not j.future.done():
                        j.future.set_result(r)
            if stop:
                return

    async def _commit(self, jobs: list[_Job]) -> list[PushResult]:
        db = self._db
        await db.execute("BEGIN IMMEDIATE")
        heads = {d.public: self.heads.get(d.id, Head()) for d in self.devices.values()}
        policies = {d.public: d.policy() for d in self.devices.values()}
        results: list[PushResult] = []
        new_devices: list[DeviceRow] = []
        new_facts: list[Facts] = []
        touched: set[bytes] = set()
        for job in jobs:
            ex_list = [ex for ex, _ in job.examined]
            flags_by_index = {ex.index: fl for ex, fl in job.examined}
            need = ingest.needed_existing(ex_list, heads)
            existing: dict[tuple[bytes, int], bytes] = {}
            for origin, seq in need:
                dev = self.devices[origin].id
                async with db.execute(
                    "SELECT raw FROM records WHERE dev = ? AND seq = ?", (dev, seq)
                ) as cur:
                    row = await cur.fetchone()
                if row is not None:
                    existing[(origin, seq)] = bytes(row[0])
            plan = ingest.plan(ex_list, heads, existing, policies)
            for origin in plan.new_origins:
                d = await self._new_device(origin, "", "laptop", job.now)
                new_devices.append(d)
                policies[origin] = d.policy()
            rows = []
            for ex in plan.accepted:
                rec, body = ex.record, ex.body
                assert rec is not None and body is not None
                d = self.devices[rec.origin]
                fl = flags_by_index[ex.index]
                facts = _facts_of(ex)
                rows.append(
                    (
                        d.id, rec.seq, rec.hash, rec.raw, job.now, body["election"],
                        body["form"], body["tps"], fl, facts.users_total_j, facts.numbers,
                        facts.supersedes, ",".join(facts.scans),
                    )
                )  # fmt: skip
                new_facts.append(Facts(d.id, rec.seq, facts, tuple(f for f in fl.split(",") if f)))
            if rows:
                await db.executemany(
                    "INSERT INTO records(dev, seq, hash, raw, received_at, election, form, tps,"
                    " flags, users_j, numbers, supersedes, scans)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
            for origin in {o.origin for o in plan.outcomes if o.origin is not None}:
                touched.add(origin)
            heads.update(plan.heads)
            results.append(PushResult(plan))
        if touched:
            await db.executemany(
                "UPDATE devices SET last_seen = ? WHERE public = ?",
                [(jobs[-1].now, o) for o in touched],
            )
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
                        "FORK: device %s (%s) signed two different entries for seq %d. Both are "
                        "kept as evidence in hub.db (table forks); nothing more is accepted from "
                        "this device. Find out whose laptop holds a copy of its data folder.",
                        d.node_id, d.name or "no name", ex.record.seq,
                    )  # fmt: skip
                d.forked = True
                self.fork_count += 1
        for f in new_facts:
            self.held_counts[f.dev] = self.held_counts.get(f.dev, 0) + 1
        self.facts.extend(new_facts)
        for origin in touched:
            self.devices[origin].last_seen = jobs[-1].now
        for r in results:
            r.heads = {
                o: self.heads.get(self.devices[o].id, Head())
                for o in {x.origin for x in r.plan.outcomes if x.origin is not None}
                if o in self.devices
            }
        return results

    async def record_raw(self, public: bytes, seq: int) -> bytes | None:
        d = self.devices.get(public)
        if d is None:
            return None
        async with self._db.execute(
            "SELECT raw FROM records WHERE dev = ? AND seq = ?", (d.id, seq)
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else bytes(row[0])

    async def records_after(
        self, public: bytes, after_seq: int, limit: int
    ) -> AsyncIterator[tuple[int, bytes]]:
        """Stream (seq, raw) of ``public``'s log after ``after_seq``, in seq order."""
        d = self.devices.get(public)
        if d is None:
            return
        async with self._db.execute(
            "SELECT seq, raw FROM records WHERE dev = ? AND seq > ? ORDER BY seq LIMIT ?",
            (d.id, after_seq, limit),
        ) as cur:
            async for seq, raw in cur:
                yield seq, bytes(raw)

    async def forks(self) -> list[dict[str, Any]]:
        out = []
        async with self._db.execute(
            "SELECT dev, seq, raw, held_raw, detected_at FROM forks ORDER BY id"
        ) as cur:
            async for dev, seq, raw, held, at in cur:
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


async def _migrate(db: aiosqlite.Connection) -> None:
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    version = int(row[0]) if row else 0
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"hub.db is at schema version {version}, newer than this c1hub "
            f"({len(MIGRATIONS)}); upgrade c1hub"
        )
    for n in range(version, len(MIGRATIONS)):
        try:
            await db.execute("BEGIN IMMEDIATE")
            for stmt in MIGRATIONS[n].split(";"):
                if stmt.strip():
                    await db.execute(stmt)
            await db.execute(f"PRAGMA user_version = {n + 1}")
            await db.execute("COMMIT")
        except sqlite3.Error:
            await db.execute("ROLLBACK")
            raise
