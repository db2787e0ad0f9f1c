"""The laptop's durable store: its signed append-only log, receipts and the pinned hub.

One SQLite file (``client.db``) in the data directory, next to the node key (``node.key``).
One aiosqlite connection per process; every statement goes through one lock, so a read never
sees another coroutine's uncommitted write. WAL, ``synchronous=FULL``: ``append`` returns only
after its transaction is durably committed. Writers take ``BEGIN IMMEDIATE``, so two
``c1client`` processes on one data directory serialise (waiting up to the busy timeout) and the
head read and the inserts of one ``append`` are atomic: the chain stays contiguous.

Tables (migration 1):

- ``meta``      name, public key, node id, creation time, and the head (last seq + hash)
- ``entries``   ``seq`` 1..N, ``raw`` = the exact record bytes from ``record.make`` (never
                re-encoded), and columns derived from the body for queries. Triggers refuse
                every UPDATE and DELETE (DESIGN §2.2).
- ``receipts``  signed receipts from the hub (``kind='hub'``) and from upstream
                (``kind='upstream'``) for this laptop's log
- ``hubs``      hubs this laptop has known; at most one row is pinned (``pinned_at`` set)

An entry's state is derived, never stored: ``confirmed`` if its seq is covered by an upstream
receipt, else ``at_hub`` if covered by a hub receipt, else ``local``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiosqlite

from hub.protocol import clock, entry, record, rules
from hub.protocol import receipt as receipt_mod
from hub.protocol.errors import ProtocolError
from hub.protocol.identity import Identity, fingerprint
from hub.shared.keyfile import KEY_FILE, load_or_create

from .errors import (
    AlreadyInitialisedError,
    HubPinError,
    IdentityError,
    NotInitialisedError,
    ReceiptError,
    StoreDamagedError,
    StoreError,
)

log = logging.getLogger(__name__)

DB_FILE = "client.db"
MAX_NAME = 120
PAGE = 500

LOCAL = "local"
AT_HUB = "at_hub"
CONFIRMED = "confirmed"
STATES = (LOCAL, AT_HUB, CONFIRMED)
HUB = "hub"
UPSTREAM = "upstream"
RECEIPT_KINDS = (HUB, UPSTREAM)

# Numbered migrations: MIGRATIONS[i] brings the schema from user_version i to i + 1.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE entries (
            seq INTEGER PRIMARY KEY,
            hash BLOB NOT NULL UNIQUE,
            raw BLOB NOT NULL,
            election TEXT NOT NULL,
            form TEXT NOT NULL,
            tps TEXT NOT NULL,
            flags TEXT NOT NULL,
            entered_at INTEGER NOT NULL
        )""",
        "CREATE INDEX entries_tps ON entries (tps, form)",
        """CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
           BEGIN SELECT RAISE(ABORT, 'entries are immutable'); END""",
        """CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
           BEGIN SELECT RAISE(ABORT, 'entries are immutable'); END""",
        """CREATE TABLE receipts (
            kind TEXT NOT NULL CHECK (kind IN ('hub', 'upstream')),
            issuer BLOB NOT NULL,
            seq INTEGER NOT NULL,
            hash BLOB NOT NULL,
            raw BLOB NOT NULL,
            received_at INTEGER NOT NULL,
            UNIQUE (kind, issuer, seq)
        )""",
        "CREATE INDEX receipts_kind_seq ON receipts (kind, seq)",
        """CREATE TABLE hubs (
            public BLOB PRIMARY KEY,
            node_id TEXT NOT NULL,
            url TEXT NOT NULL,
            pinned_at INTEGER,
            last_ok_at INTEGER
        )""",
    ),
    (  # 2: what each hub last said about this laptop (pending / approved / revoked)
        "ALTER TABLE hubs ADD COLUMN state TEXT",
        "ALTER TABLE hubs ADD COLUMN code TEXT",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True, slots=True)
class StoredEntry:
    seq: int
    hash: bytes
    raw: bytes
    election: str
    form: str
    tps: str
    flags: tuple[str, ...]
    entered_at: int


@dataclass(frozen=True, slots=True)
class Marks:
    """The highest seq covered by a hub receipt and by an upstream receipt."""

    hub: int = 0
    upstream: int = 0

    def state(self, seq: int) -> str:
        if seq <= self.upstream:
            return CONFIRMED
        if seq <= self.hub:
            return AT_HUB
        return LOCAL


@dataclass(frozen=True, slots=True)
class HubInfo:
    public: bytes
    node_id: str
    url: str
    pinned_at: int
    last_ok_at: int | None
    state: str | None = None  # this laptop's state there, as the hub last said
    code: str | None = None  # the comparison code the hub showed


@dataclass(frozen=True, slots=True)
class Summary:
    """What ``c1client status`` shows: ``at_hub`` counts every entry the hub holds (those
    confirmed upstream included), so ``local_only + at_hub = entries`` and
    ``confirmed_upstream <= at_hub``."""

    node_id: str
    name: str
    entries: int
    last_seq: int
    flagged: int
    hub: HubInfo | None
    at_hub: int
    confirmed_upstream: int
    local_only: int
    oldest_local_entered_at: int | None


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing ``verify`` found wrong; ``seq`` is the entry concerned (None: the store)."""

    seq: int | None
    code: str
    en: str
    id: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "code": self.code, "en": self.en, "id": self.id}


@dataclass(frozen=True, slots=True)
class VerifyReport:
    checked: int
    last_seq: int
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class _Columns:
    election: str
    form: str
    tps: str
    flags: str
    entered_at: int


def _columns(body: bytes) -> _Columns:
    """The query columns of a body; validates it (raises CodecError/SchemaError)."""
    b = entry.decode_body(body)
    return _Columns(
        b["election"],
        b["form"],
        b["tps"],
        ",".join(rules.rule_ids(rules.check(b))),
        b["entered_at"],
    )


def _split_flags(text: str) -> tuple[str, ...]:
    return tuple(text.split(",")) if text else ()


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        raise StoreError(
            f"a laptop name must be 1..{MAX_NAME} printable characters",
            f"nama laptop harus 1..{MAX_NAME} karakter yang dapat dicetak",
            code="bad_name",
        )
    return name


class ClientStore:
    """The local store of one data directory: ``ClientStore.open`` / ``ClientStore.create``."""

    def __init__(self, db: aiosqlite.Connection, ident: Identity, data_dir: Path, name: str):
        self._db = db
        self._lock = asyncio.Lock()
        self.identity = ident
        self.data_dir = data_dir
        self.name = name

    @property
    def node_id(self) -> str:
        return self.identity.node_id

    # -- lifecycle ----------------------------------------------------------------------------

    @classmethod
    async def create(
        cls, data_dir: Path, name: str, *, now: int, busy_timeout: float = 30.0
    ) -> tuple[ClientStore, bool]:
        """Initialise ``data_dir`` (mode 0700) with a key and a store named ``name``.

        Returns ``(store, created)``. Idempotent for the same name (``created`` is False);
        another name raises AlreadyInitialisedError. An existing node.key without a store is
        kept (a restored key); a store without its node.key is refused (IdentityError).
        """
        name = check_name(name)
        if not data_dir.exists():
            data_dir.mkdir(parents=True, mode=0o700)
            os.chmod(data_dir, 0o700)
        elif not data_dir.is_dir():
            raise StoreError(f"{data_dir} is not a directory", f"{data_dir} bukan direktori")
        elif data_dir.stat().st_mode & 0o077:
            log.warning("data directory %s is accessible by other users", data_dir)
        db_path = data_dir / DB_FILE
        if db_path.exists() and not (data_dir / KEY_FILE).exists():
            raise _missing_key(data_dir)
        try:
            ident, key_created = load_or_create(data_dir)
        except (OSError, ValueError) as exc:
            raise _bad_key(exc) from None
        if not key_created:
            log.info("using the existing key in %s", data_dir / KEY_FILE)
        # Create the file 0600 first: SQLite gives its -wal and -shm files the same mode.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(db_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        db = await _connect(db_path, busy_timeout)
        try:
            created = await _claim(db, ident, name, now, data_dir)
        except BaseException:
            await db.close()
            raise
        return cls(db, ident, data_dir, name), created

    @classmethod
    async def open(cls, data_dir: Path, *, busy_timeout: float = 30.0) -> ClientStore:
        """Open an initialised data directory (NotInitialisedError if it is not)."""
        db_path = data_dir / DB_FILE
        if not db_path.exists():
            raise NotInitialisedError(
                f"{data_dir} is not initialised: run `c1client init --data {data_dir} --name NAME`",
                f"{data_dir} belum diinisialisasi: jalankan "
                f"`c1client init --data {data_dir} --name NAMA`",
            )
        if not (data_dir / KEY_FILE).exists():
            raise _missing_key(data_dir)
        try:
            ident, _ = load_or_create(data_dir)
        except (OSError, ValueError) as exc:
            raise _bad_key(exc) from None
        db = await _connect(db_path, busy_timeout)
        try:
            meta = await _meta(db)
            if "name" not in meta:
                raise NotInitialisedError(
                    f"{data_dir} is not initialised: run `c1client init`",
                    f"{data_dir} belum diinisialisasi: jalankan `c1client init`",
                )
            _check_key(meta, ident, data_dir)
        except BaseException:
            await db.close()
            raise
        return cls(db, ident, data_dir, meta["name"])

    async def close(self) -> None:
        async with self._lock:
            await self._db.close()

    async def __aenter__(self) -> ClientStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- plumbing -----------------------------------------------------------------------------

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        """One durable write transaction (BEGIN IMMEDIATE ... COMMIT) under the lock."""
        async with self._lock:
            try:
                await self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreError(
                    f"the store is busy (another c1client is writing to it): {exc}",
                    f"penyimpanan sedang dipakai (c1client lain sedang menulis): {exc}",
                    code="store_busy",
                ) from None
            try:
                yield self._db
                await self._db.execute("COMMIT")
            except BaseException as exc:
                try:
                    await self._db.execute("ROLLBACK")
                except sqlite3.Error as rb:  # pragma: no cover - connection already broken
                    log.warning("rollback failed: %s", rb)
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(
                        f"the store could not save: {exc}",
                        f"penyimpanan gagal menyimpan: {exc}",
                    ) from exc
                raise

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self._lock:
            return list(await self._db.execute_fetchall(sql, params))

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = await self._all(sql, params)
        return rows[0] if rows else None

    # -- the log ------------------------------------------------------------------------------

    async def append(self, bodies: Sequence[bytes]) -> list[record.Record]:
        """Sign each body as the next record and save them all in one durable transaction.

        Bodies are validated first (``entry.decode_body``; CodecError/SchemaError and nothing
        is written). Returns the records in seq order, after the commit.
        """
        if not bodies:
            return []
        cols = [_columns(b) for b in bodies]
        async with self._write() as db:
            seq, prev = await _head(db)
            records: list[record.Record] = []
            for body in bodies:
                seq += 1
                rec = record.make(self.identity, seq, prev, body)
                records.append(rec)
                prev = rec.hash
            await db.executemany(
                "INSERT INTO entries (seq, hash, raw, election, form, tps, flags, entered_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (r.seq, r.hash, r.raw, c.election, c.form, c.tps, c.flags, c.entered_at)
                    for r, c in zip(records, cols, strict=True)
                ],
            )
            await db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [("head_seq", str(seq)), ("head_hash", prev.hex())],
            )
        log.debug("appended seq %d..%d", records[0].seq, records[-1].seq)
        return records

    async def head(self) -> tuple[int, bytes]:
        """(last seq, its record hash); (0, GENESIS) for an empty log."""
        row = await self._one("SELECT seq, raw FROM entries ORDER BY seq DESC LIMIT 1")
        if row is None:
            return 0, record.GENESIS
        return int(row[0]), hashlib.sha256(bytes(row[1])).digest()

    async def last_seq(self) -> int:
        """The seq of the newest entry (0 for an empty log)."""
        return (await self.head())[0]

    async def hash_at(self, seq: int) -> bytes | None:
        """The record hash of entry ``seq`` (computed from its bytes), or None if not held."""
        row = await self._one("SELECT raw FROM entries WHERE seq = ?", (seq,))
        return None if row is None else hashlib.sha256(bytes(row[0])).digest()

    async def get(self, seq: int) -> StoredEntry | None:
        row = await self._one(f"SELECT {_ENTRY_COLS} FROM entries WHERE seq = ?", (seq,))
        return None if row is None else _entry(row)

    async def entries(self, after: int = 0, *, page: int = PAGE) -> AsyncIterator[StoredEntry]:
        """Every entry with seq > ``after``, in seq order, read ``page`` rows at a time."""
        while True:
            rows = await self._all(
                f"SELECT {_ENTRY_COLS} FROM entries WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, page),
            )
            for row in rows:
                yield _entry(row)
            if len(rows) < page:
                return
            after = rows[-1][0]

    async def same_entries(self, parsed: Sequence[dict[str, Any]]) -> list[int | None]:
        """For each parsed entry, the seq of an entry already saved here with the same
        election, form, TPS and numbers (the same form typed again by mistake), or None.
        One query per call (``enter`` asks once per batch)."""
        tps = sorted({p["tps"] for p in parsed})
        held: dict[tuple[str, str, str], list[tuple[int, bytes, Any]]] = {}
        for i in range(0, len(tps), 500):
            chunk = tps[i : i + 500]
            rows = await self._all(
                f"SELECT seq, raw FROM entries WHERE tps IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            for seq, raw in rows:
                try:
                    body = entry.decode_body(record.decode(bytes(raw)).body)
                except ProtocolError:
                    continue  # a damaged row is `verify`'s business; it cannot be a twin
                held.setdefault(entry.key(body), []).append(
                    (int(seq), entry.numbers(body), body.get("supersedes"))
                )
        out: list[int | None] = []
        for p in parsed:
            want = (entry.numbers(p), p.get("supersedes"))
            out.append(
                next((seq for seq, n, sup in held.get(entry.key(p), []) if (n, sup) == want), None)
            )
        return out

    async def records_after(self, seq: int, limit: int) -> list[bytes]:
        """Raw record bytes with seq > ``seq``, in seq order, at most ``limit`` of them."""
        rows = await self._all(
            "SELECT raw FROM entries WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        )
        return [bytes(r[0]) for r in rows]

    # -- receipts and the hub -----------------------------------------------------------------

    async def add_receipt(
        self, kind: str, receipt: receipt_mod.Receipt, now: int | None = None
    ) -> bool:
        """Keep a signed receipt for this laptop's log. Returns False if already held.

        Checked first (ReceiptError otherwise): the signature over ``receipt.raw`` by its
        issuer; for ``kind='hub'``, the issuer is the pinned hub (when one is pinned); the
        receipt is for this laptop's log; the seq it names is held here with that very hash.
        A receipt for seq 0 (the hub holds nothing yet) is not kept.
        """
        if kind not in RECEIPT_KINDS:
            raise ValueError(f"receipt kind must be one of {RECEIPT_KINDS}, not {kind!r}")
        try:
            r = receipt_mod.decode(receipt.raw)
            r.check(r.issuer)
        except ProtocolError as exc:
            raise ReceiptError(
                f"receipt does not verify: {exc.message}",
                f"tanda terima tidak sah: {exc.message}",
            ) from None
        if r.origin != self.identity.public:
            raise ReceiptError(
                "receipt is for another laptop's entries",
                "tanda terima ini untuk entri laptop lain",
            )
        if r.seq == 0:
            return False
        at = clock.now_s() if now is None else now
        async with self._write() as db:
            if kind == HUB:
                pins = await _pins(db)
                if pins and all(p.public != r.issuer for p in pins):
                    raise ReceiptError(
                        f"receipt was issued by {fingerprint(r.issuer)}, not by the pinned hub "
                        f"{pins[0].node_id}",
                        f"tanda terima dari {fingerprint(r.issuer)}, bukan dari hub yang "
                        f"disematkan {pins[0].node_id}",
                    )
            rows = await db.execute_fetchall("SELECT hash FROM entries WHERE seq = ?", (r.seq,))
            held = list(rows)
            if not held:
                raise ReceiptError(
                    f"receipt covers entry {r.seq}, but this laptop has no entry {r.seq}",
                    f"tanda terima mencakup entri {r.seq}, tetapi laptop ini tidak punya entri "
                    f"{r.seq}",
                )
            if bytes(held[0][0]) != r.hash:
                raise ReceiptError(
                    f"receipt names a different entry {r.seq} than the one held here "
                    "(a possible fork: stop and call the coordinator)",
                    f"tanda terima menyebut entri {r.seq} yang berbeda dari yang tersimpan "
                    "(kemungkinan fork: berhenti dan hubungi koordinator)",
                )
            cur = await db.execute(
                "INSERT OR IGNORE INTO receipts (kind, issuer, seq, hash, raw, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (kind, r.issuer, r.seq, r.hash, r.raw, at),
            )
            inserted = cur.rowcount > 0
            await cur.close()
        return inserted

    async def highest_receipt(self, kind: str) -> int:
        """The highest seq any receipt of ``kind`` covers (0 if none)."""
        row = await self._one("SELECT max(seq) FROM receipts WHERE kind = ?", (kind,))
        return int(row[0]) if row is not None and row[0] is not None else 0

    async def marks(self) -> Marks:
        return Marks(await self.highest_receipt(HUB), await self.highest_receipt(UPSTREAM))

    async def pin_hub(
        self,
        public: bytes,
        node_id: str,
        url: str,
        now: int,
        *,
        replace: bool = False,
        add: bool = False,
    ) -> None:
        """Pin the hub with key ``public``; re-pinning a pinned hub updates its id and URL.

        Pinning a different hub while one is pinned raises HubPinError, unless ``add`` (the
        laptop is enrolled at a second hub of the same room and pushes to both) or ``replace``
        (the old pins are dropped).
        """
        if len(public) != 32:
            raise ValueError("a hub key is 32 bytes")
        if node_id != fingerprint(public):
            raise HubPinError(
                f"hub id {node_id} does not belong to the hub's key ({fingerprint(public)})",
                f"id hub {node_id} tidak sesuai dengan kuncinya ({fingerprint(public)})",
            )
        async with self._write() as db:
            pins = await _pins(db)
            if any(p.public == public for p in pins):
                await db.execute(
                    "UPDATE hubs SET node_id = ?, url = ? WHERE public = ?", (node_id, url, public)
                )
                return
            if pins and not (replace or add):
                raise HubPinError(
                    f"this laptop is pinned to hub {pins[0].node_id}, not {node_id}",
                    f"laptop ini tersemat ke hub {pins[0].node_id}, bukan {node_id}",
                )
            if replace:
                await db.execute("UPDATE hubs SET pinned_at = NULL")
            await db.execute(
                "INSERT INTO hubs (public, node_id, url, pinned_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (public) DO UPDATE SET node_id = excluded.node_id,"
                " url = excluded.url, pinned_at = excluded.pinned_at",
                (public, node_id, url, now),
            )

    async def pinned_hubs(self) -> list[HubInfo]:
        """Every pinned hub, most recently pinned first."""
        async with self._lock:
            return await _pins(self._db)

    async def pinned_hub(self) -> tuple[bytes, str, str] | None:
        """(public key, node id, url) of the pinned hub, or None."""
        info = await self.hub_info()
        return None if info is None else (info.public, info.node_id, info.url)

    async def hub_info(self) -> HubInfo | None:
        async with self._lock:
            return await _pinned(self._db)

    async def set_hub_url(
        self,
        url: str,
        now: int,
        public: bytes | None = None,
        *,
        state: str | None = None,
        code: str | None = None,
    ) -> None:
        """Record that a pinned hub (``public``; default: every pinned hub) answered at ``url``
        at ``now``, and what it said of this laptop (``state``, comparison ``code``).
        HubPinError if no such hub is pinned."""
        async with self._write() as db:
            cur = await db.execute(
                "UPDATE hubs SET url = ?, last_ok_at = ?, state = COALESCE(?, state),"
                " code = COALESCE(?, code) WHERE pinned_at IS NOT NULL"
                " AND (? IS NULL OR public = ?)",
                (url, now, state, code, public, public),
            )
            changed = cur.rowcount
            await cur.close()
            if not changed:
                raise HubPinError("no hub is pinned yet", "belum ada hub yang disematkan")

    # -- status and verification --------------------------------------------------------------

    async def summary(self) -> Summary:
        marks = await self.marks()
        row = await self._one(
            "SELECT count(*), coalesce(max(seq), 0), coalesce(sum(flags != ''), 0) FROM entries"
        )
        count, last, flagged = int(row[0]), int(row[1]), int(row[2])
        confirmed = min(marks.upstream, last)
        at_hub = min(max(marks.hub, marks.upstream), last)  # confirmed ones are at the hub too
        oldest = await self._one(
            "SELECT entered_at FROM entries WHERE seq > ? ORDER BY seq LIMIT 1",
            (max(marks.hub, marks.upstream),),
        )
        return Summary(
            node_id=self.node_id,
            name=self.name,
            entries=count,
            last_seq=last,
            flagged=flagged,
            hub=await self.hub_info(),
            at_hub=at_hub,
            confirmed_upstream=confirmed,
            local_only=max(last - at_hub, 0),
            oldest_local_entered_at=None if oldest is None else int(oldest[0]),
        )

    async def verify(self, *, page: int = PAGE) -> VerifyReport:
        """Re-check every stored record, streaming through the table ``page`` rows at a time.

        Checks: the bytes decode as a record of this laptop's key with a valid signature; the
        seqs are 1..N with no gap; each ``prev`` is the previous record's hash; the ``hash``
        column is SHA-256 of the bytes; the ``election``/``form``/``tps``/``entered_at``/
        ``flags`` columns agree with the signed body; the head in ``meta`` is the last entry;
        every receipt names an entry held here, with its hash.
        """
        problems: list[Problem] = []
        expected, prev_hash, checked, last = 1, record.GENESIS, 0, 0
        while True:
            rows = await self._all(
                f"SELECT {_ENTRY_COLS} FROM entries WHERE seq > ? ORDER BY seq LIMIT ?",
                (last, page),
            )
            for row in rows:
                e = _entry(row)
                checked += 1
                gap = e.seq != expected
                if gap:
                    span = f"{expected}" if expected == e.seq - 1 else f"{expected}..{e.seq - 1}"
                    problems.append(_problem(expected, "seq_gap", span=span))
                actual = hashlib.sha256(e.raw).digest()
                problems.extend(self._check_row(e, actual, None if gap else prev_hash))
                prev_hash, expected, last = actual, e.seq + 1, e.seq
            if len(rows) < page:
                break
        async with self._lock:
            meta = await _meta(self._db)
        head = (int(meta.get("head_seq", "0")), meta.get("head_hash", record.GENESIS.hex()))
        if head != (last, prev_hash.hex()):
            problems.append(
                _problem(last + 1 if head[0] > last else None, "head", head=head[0], last=last)
            )
        problems.extend(await self._check_receipts(page))
        return VerifyReport(checked, last, problems)

    def _check_row(self, e: StoredEntry, actual: bytes, prev_hash: bytes | None) -> list[Problem]:
        out: list[Problem] = []
        s = e.seq
        if e.hash != actual:
            out.append(_problem(s, "hash_column"))
        try:
            rec = record.decode(e.raw)
        except ProtocolError as exc:
            return [*out, _problem(s, "bad_record", detail=exc.message)]
        if rec.origin != self.identity.public:
            out.append(_problem(s, "wrong_origin", node=fingerprint(rec.origin)))
        if rec.seq != s:
            out.append(_problem(s, "seq_mismatch", said=rec.seq))
        try:
            rec.verify()
        except ProtocolError:
            out.append(_problem(s, "bad_signature"))
        if prev_hash is not None and rec.prev != prev_hash:
            out.append(_problem(s, "chain", before=s - 1))
        try:
            cols = _columns(rec.body)
        except ProtocolError as exc:
            return [*out, _problem(s, "bad_body", detail=exc.message)]
        stored = _Columns(e.election, e.form, e.tps, ",".join(e.flags), e.entered_at)
        for col in _Columns.__slots__:
            value, signed = getattr(stored, col), getattr(cols, col)
            if value != signed:
                out.append(_problem(s, "column", col=col, value=value, signed=signed))
        return out

    async def _check_receipts(self, page: int) -> list[Problem]:
        out: list[Problem] = []
        rowid = 0
        while True:
            rows = await self._all(
                "SELECT r.rowid, r.kind, r.seq, r.hash, e.hash FROM receipts r"
                " LEFT JOIN entries e ON e.seq = r.seq WHERE r.rowid > ? ORDER BY r.rowid LIMIT ?",
                (rowid, page),
            )
            for rid, kind, seq, rhash, ehash in rows:
                rowid = rid
                if ehash is None:
                    out.append(_problem(seq, "receipt_ahead", kind=kind))
                elif bytes(rhash) != bytes(ehash):
                    out.append(_problem(seq, "receipt_mismatch", kind=kind))
            if len(rows) < page:
                return out


# What ``verify`` reports: code -> (English, Indonesian) message templates.
PROBLEMS: dict[str, tuple[str, str]] = {
    "seq_gap": ("entries {span} are missing", "entri {span} hilang"),
    "hash_column": (
        "the stored hash is not the SHA-256 of the stored record bytes",
        "hash tersimpan bukan SHA-256 dari data rekaman tersimpan",
    ),
    "bad_record": (
        "the stored bytes are not a valid record: {detail}",
        "data tersimpan bukan rekaman yang sah: {detail}",
    ),
    "wrong_origin": (
        "the record was signed by another node ({node})",
        "rekaman ditandatangani node lain ({node})",
    ),
    "seq_mismatch": (
        "the record says seq {said} but is stored as this seq",
        "rekaman bernomor {said} tetapi tersimpan di nomor ini",
    ),
    "bad_signature": ("the signature does not verify", "tanda tangan tidak sah"),
    "chain": (
        "the previous-entry hash does not match entry {before}",
        "hash entri sebelumnya tidak cocok dengan entri {before}",
    ),
    "bad_body": ("the entry body is invalid: {detail}", "isi entri tidak sah: {detail}"),
    "column": (
        "the stored {col} {value!r} does not match the signed entry ({signed!r})",
        "kolom {col} tersimpan {value!r} tidak sesuai entri yang ditandatangani ({signed!r})",
    ),
    "head": (
        "the store's head says the last entry is {head}, but the last stored entry is {last}"
        " (or its hash differs)",
        "catatan kepala menyebut entri terakhir {head}, tetapi entri terakhir yang tersimpan"
        " {last} (atau hash-nya berbeda)",
    ),
    "receipt_ahead": (
        "a {kind} receipt covers this entry, but it is not held here",
        "tanda terima {kind} mencakup entri ini, tetapi entri itu tidak tersimpan di sini",
    ),
    "receipt_mismatch": (
        "a {kind} receipt names a different entry with this seq than the one held",
        "tanda terima {kind} menyebut entri bernomor ini yang berbeda dari yang tersimpan",
    ),
}


def _problem(seq: int | None, code: str, **kw: Any) -> Problem:
    en, id_ = PROBLEMS[code]
    return Problem(seq, code, en.format(**kw), id_.format(**kw))


_ENTRY_COLS = "seq, hash, raw, election, form, tps, flags, entered_at"


def _entry(row: Any) -> StoredEntry:
    return StoredEntry(
        seq=int(row[0]),
        hash=bytes(row[1]),
        raw=bytes(row[2]),
        election=str(row[3]),
        form=str(row[4]),
        tps=str(row[5]),
        flags=_split_flags(str(row[6])),
        entered_at=int(row[7]),
    )


def _missing_key(data_dir: Path) -> IdentityError:
    return IdentityError(
        f"{data_dir / KEY_FILE} is missing but the store exists: restore node.key from its "
        "backup (a new key could not continue this laptop's signed log)",
        f"{data_dir / KEY_FILE} hilang padahal penyimpanan ada: pulihkan node.key dari "
        "cadangan (kunci baru tidak dapat melanjutkan log bertanda tangan laptop ini)",
    )


def _bad_key(exc: Exception) -> IdentityError:
    return IdentityError(
        f"cannot use the node key: {exc}", f"kunci node tidak dapat dipakai: {exc}"
    )


def _check_key(meta: dict[str, str], ident: Identity, data_dir: Path) -> None:
    if meta.get("public") != ident.public.hex():
        raise IdentityError(
            f"{data_dir / KEY_FILE} is not the key this store was created with "
            f"(store {meta.get('node_id')}, key {ident.node_id})",
            f"{data_dir / KEY_FILE} bukan kunci pembuat penyimpanan ini "
            f"(penyimpanan {meta.get('node_id')}, kunci {ident.node_id})",
        )


async def _connect(path: Path, busy_timeout: float) -> aiosqlite.Connection:
    db = await aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout)
    try:
        await db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        rows = list(await db.execute_fetchall("PRAGMA journal_mode = WAL"))
        if not rows or str(rows[0][0]).lower() != "wal":
            raise StoreError(
                f"{path}: cannot switch SQLite to WAL mode",
                f"{path}: SQLite tidak dapat memakai mode WAL",
            )
        await db.execute("PRAGMA synchronous = FULL")
        await _migrate(db, path)
    except BaseException:
        await db.close()
        raise
    return db


async def _migrate(db: aiosqlite.Connection, path: Path) -> None:
    rows = list(await db.execute_fetchall("PRAGMA user_version"))
    if int(rows[0][0]) == SCHEMA_VERSION:
        return
    await db.execute("BEGIN IMMEDIATE")  # re-read under the write lock: another process may race
    try:
        rows = list(await db.execute_fetchall("PRAGMA user_version"))
        version = int(rows[0][0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{path} was written by a newer c1client (schema {version}); upgrade c1client",
                f"{path} dibuat oleh c1client yang lebih baru (skema {version}); perbarui c1client",
            )
        for n in range(version, SCHEMA_VERSION):
            for stmt in MIGRATIONS[n]:
                await db.execute(stmt)
            await db.execute(f"PRAGMA user_version = {n + 1}")
            log.info("store %s migrated to schema %d", path, n + 1)
    except BaseException:
        await db.execute("ROLLBACK")
        raise
    await db.execute("COMMIT")


async def _meta(db: aiosqlite.Connection) -> dict[str, str]:
    return {str(k): str(v) for k, v in await db.execute_fetchall("SELECT key, value FROM meta")}


async def _claim(
    db: aiosqlite.Connection, ident: Identity, name: str, now: int, data_dir: Path
) -> bool:
    """Write the store's identity on first ``init``; check it on later ones."""
    await db.execute("BEGIN IMMEDIATE")
    try:
        meta = await _meta(db)
        if "name" in meta:
            _check_key(meta, ident, data_dir)
            if meta["name"] != name:
                raise AlreadyInitialisedError(
                    f"already initialised as {meta['name']!r} (node id {ident.node_id}); "
                    "a laptop's name cannot be changed",
                    f"sudah diinisialisasi dengan nama {meta['name']!r} (id node "
                    f"{ident.node_id}); nama laptop tidak dapat diubah",
                )
            created = False
        else:
            await db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("name", name),
                    ("public", ident.public.hex()),
                    ("node_id", ident.node_id),
                    ("created_at", str(now)),
                    ("head_seq", "0"),
                    ("head_hash", record.GENESIS.hex()),
                ],
            )
            created = True
    except BaseException:
        await db.execute("ROLLBACK")
        raise
    await db.execute("COMMIT")
    return created


async def _head(db: aiosqlite.Connection) -> tuple[int, bytes]:
    """The head inside a write transaction, cross-checked with ``meta`` (else damaged)."""
    rows = list(await db.execute_fetchall("SELECT seq, raw FROM entries ORDER BY seq DESC LIMIT 1"))
    seq, hash_ = (
        (0, record.GENESIS)
        if not rows
        else (
            int(rows[0][0]),
            hashlib.sha256(bytes(rows[0][1])).digest(),
        )
    )
    meta = await _meta(db)
    if meta.get("head_seq") != str(seq) or meta.get("head_hash") != hash_.hex():
        raise StoreDamagedError(
            f"the store's head (entry {meta.get('head_seq')}) does not match its last entry "
            f"({seq}); nothing was saved: run `c1client verify`",
            f"catatan kepala (entri {meta.get('head_seq')}) tidak cocok dengan entri terakhir "
            f"({seq}); tidak ada yang disimpan: jalankan `c1client verify`",
        )
    return seq, hash_


async def _pins(db: aiosqlite.Connection) -> list[HubInfo]:
    rows = await db.execute_fetchall(
        "SELECT public, node_id, url, pinned_at, last_ok_at, state, code FROM hubs"
        " WHERE pinned_at IS NOT NULL ORDER BY pinned_at DESC, node_id"
    )
    return [
        HubInfo(
            bytes(public),
            str(node_id),
            str(url),
            int(pinned_at),
            None if last_ok is None else int(last_ok),
            state,
            code,
        )
        for public, node_id, url, pinned_at, last_ok, state, code in rows
    ]


async def _pinned(db: aiosqlite.Connection) -> HubInfo | None:
    pins = await _pins(db)
    return pins[0] if pins else None
