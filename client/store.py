"""The laptop's durable store: its signed append-only log, receipts and the pinned hub(s).

``ClientStore.create`` / ``ClientStore.open`` bind a data folder (``client.datadir``: the key
and ``client.db``); the file has one owner, ``hub.shared.db.Database`` (``client.db``
describes the schema). Writes run on its single writer inside ``BEGIN IMMEDIATE`` ... ``COMMIT``:
``append`` reads the head and inserts in one transaction, so two ``c1client`` processes on one
data folder keep one contiguous chain, and it returns only after the COMMIT is durable.
Reads run on read-only connections that only ever see committed data: nobody acts on an entry,
receipt or pin that may still roll back.

What the store accepts is decided in the core: receipts by ``hub.protocol.sender.judge_receipt``,
pins by ``sender.pin_decision``. Where entries are (local / at hub / confirmed) is derived in
``client.status``; ``verify`` is ``client.verify``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiosqlite

from hub.protocol import clock, entry, record, sender
from hub.protocol import receipt as receipt_mod
from hub.protocol.errors import ProtocolError
from hub.protocol.identity import Identity, fingerprint
from hub.shared.db import Database

from . import datadir, scanstate
from . import verify as verify_mod
from .db import (
    DB_FILE,
    ENTRY_COLS,
    SCHEMA_VERSION,
    StoredEntry,
    columns,
    entry_row,
    read_meta,
    write,
)
from .errors import HubPinError, ReceiptError, StoreDamagedError
from .status import AT_HUB, CONFIRMED, LOCAL, STATES, Marks
from .verify import PAGE, Problem, VerifyReport

__all__ = [
    "AT_HUB",
    "CONFIRMED",
    "DB_FILE",
    "HUB",
    "LOCAL",
    "PAGE",
    "RECEIPT_KINDS",
    "SCHEMA_VERSION",
    "STATES",
    "UPSTREAM",
    "ClientStore",
    "HubInfo",
    "Marks",
    "Problem",
    "StoredEntry",
    "Summary",
    "VerifyReport",
    "check_name",
]

log = logging.getLogger(__name__)

HUB = "hub"
UPSTREAM = "upstream"
RECEIPT_KINDS = (HUB, UPSTREAM)
check_name = datadir.check_name


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

    def to_dict(self, data_dir: Path) -> dict[str, Any]:
        """The ``c1client status --json`` document (docs/json-output.md)."""
        h = self.hub
        return {
            "node_id": self.node_id,
            "name": self.name,
            "data_dir": str(data_dir),
            "entries": self.entries,
            "last_seq": self.last_seq,
            "flagged": self.flagged,
            "hub": {
                "id": h.node_id if h else None,
                "url": h.url if h else None,
                "last_ok_at": h.last_ok_at if h else None,
                "state": h.state if h else None,
                "code": h.code if h else None,
            },
            "at_hub": self.at_hub,
            "confirmed_upstream": self.confirmed_upstream,
            "local_only": self.local_only,
            "oldest_local_entered_at": self.oldest_local_entered_at,
        }


class ClientStore:
    """The local store of one data directory: ``ClientStore.open`` / ``ClientStore.create``."""

    def __init__(self, db: Database, ident: Identity, data_dir: Path, name: str):
        self._db = db
        self.identity = ident
        self.data_dir = data_dir
        self.name = name

    @property
    def node_id(self) -> str:
        return self.identity.node_id

    @property
    def db(self) -> Database:
        """The database, for modules that keep a table of their own (``client.scanstate``)."""
        return self._db

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
        opened, created = await datadir.create(data_dir, name, now=now, busy_timeout=busy_timeout)
        return cls(opened.db, opened.identity, opened.data_dir, opened.name), created

    @classmethod
    async def open(cls, data_dir: Path, *, busy_timeout: float = 30.0) -> ClientStore:
        """Open an initialised data directory (NotInitialisedError if it is not)."""
        opened = await datadir.open_dir(data_dir, busy_timeout=busy_timeout)
        return cls(opened.db, opened.identity, opened.data_dir, opened.name)

    async def close(self) -> None:
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

    # -- the log ------------------------------------------------------------------------------

    async def append(self, bodies: Sequence[bytes]) -> list[record.Record]:
        """Sign each body as the next record and save them all in one durable transaction.

        Bodies are validated first (``entry.decode_body``; CodecError/SchemaError and nothing
        is written). Returns the records in seq order, after the commit.
        """
        if not bodies:
            return []
        cols = [columns(b) for b in bodies]
        async with write(self._db) as conn:
            seq, prev = await _head(conn)
            records: list[record.Record] = []
            for body in bodies:
                seq += 1
                rec = record.make(self.identity, seq, prev, body)
                records.append(rec)
                prev = rec.hash
            await conn.executemany(
                "INSERT INTO entries (seq, hash, raw, election, form, tps, flags, entered_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (r.seq, r.hash, r.raw, c.election, c.form, c.tps, c.flags, c.entered_at)
                    for r, c in zip(records, cols, strict=True)
                ],
            )
            await conn.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [("head_seq", str(seq)), ("head_hash", prev.hex())],
            )
            await scanstate.add(conn, [(r.seq, scanstate.scans_of(b))
                                       for r, b in zip(records, bodies, strict=True)])  # fmt: skip
            await scanstate.marked_append(conn, records[0].seq, seq)
        log.debug("appended seq %d..%d", records[0].seq, records[-1].seq)
        return records

    async def head(self) -> tuple[int, bytes]:
        """(last seq, its record hash); (0, GENESIS) for an empty log."""
        row = await self._db.fetchone("SELECT seq, raw FROM entries ORDER BY seq DESC LIMIT 1")
        if row is None:
            return 0, record.GENESIS
        return int(row[0]), hashlib.sha256(bytes(row[1])).digest()

    async def last_seq(self) -> int:
        """The seq of the newest entry (0 for an empty log)."""
        return (await self.head())[0]

    async def hash_at(self, seq: int) -> bytes | None:
        """The record hash of entry ``seq`` (computed from its bytes), or None if not held."""
        row = await self._db.fetchone("SELECT raw FROM entries WHERE seq = ?", (seq,))
        return None if row is None else hashlib.sha256(bytes(row[0])).digest()

    async def get(self, seq: int) -> StoredEntry | None:
        row = await self._db.fetchone(f"SELECT {ENTRY_COLS} FROM entries WHERE seq = ?", (seq,))
        return None if row is None else entry_row(row)

    async def entries(self, after: int = 0, *, page: int = PAGE) -> AsyncIterator[StoredEntry]:
        """Every entry with seq > ``after``, in seq order, read ``page`` rows at a time."""
        while True:
            rows = await self._db.fetchall(
                f"SELECT {ENTRY_COLS} FROM entries WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, page),
            )
            for row in rows:
                yield entry_row(row)
            if len(rows) < page:
                return
            after = int(rows[-1][0])

    async def same_entries(self, parsed: Sequence[dict[str, Any]]) -> list[int | None]:
        """For each parsed entry, the seq of an entry already saved here with the same
        election, form, TPS and numbers (the same form typed again by mistake), or None.
        One query per call (``enter`` asks once per batch)."""
        tps = sorted({p["tps"] for p in parsed})
        held: dict[tuple[str, str, str], list[tuple[int, bytes, Any]]] = {}
        for i in range(0, len(tps), 500):
            chunk = tps[i : i + 500]
            rows = await self._db.fetchall(
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
        rows = await self._db.fetchall(
            "SELECT raw FROM entries WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        )
        return [bytes(r[0]) for r in rows]

    # -- receipts and the hub -----------------------------------------------------------------

    async def add_receipt(
        self, kind: str, receipt: receipt_mod.Receipt, now: int | None = None
    ) -> bool:
        """Keep a signed receipt for this laptop's log. Returns False if already held.

        Checked first (ReceiptError otherwise; ``sender.judge_receipt``): the signature over
        ``receipt.raw`` by its issuer; the receipt is for this laptop's log; for
        ``kind='hub'``, the issuer is a pinned hub (when one is pinned); the seq it names is
        held here with that very hash. A receipt for seq 0 (the hub holds nothing yet) is not
        kept.
        """
        if kind not in RECEIPT_KINDS:
            raise ValueError(f"receipt kind must be one of {RECEIPT_KINDS}, not {kind!r}")
        at = clock.now_s() if now is None else now
        try:
            seq = receipt_mod.decode(receipt.raw).seq  # what it signs, not what it says
        except ProtocolError:
            seq = 0  # judge_receipt says why
        async with write(self._db) as conn:
            pins = await _pins(conn) if kind == HUB else []
            rows = list(
                await conn.execute_fetchall("SELECT hash FROM entries WHERE seq = ?", (seq,))
            )
            check = sender.judge_receipt(
                receipt,
                origin=self.identity.public,
                issuers=[p.public for p in pins] or None,
                held_hash=bytes(rows[0][0]) if rows else None,
            )
            if check.verdict == sender.EMPTY:
                return False
            if not check.ok:
                raise _receipt_error(check, pins)
            r = check.receipt
            cur = await conn.execute(
                "INSERT OR IGNORE INTO receipts (kind, issuer, seq, hash, raw, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (kind, r.issuer, r.seq, r.hash, r.raw, at),
            )
            inserted = cur.rowcount > 0
            await cur.close()
        return inserted

    async def highest_receipt(self, kind: str) -> int:
        """The highest seq any receipt of ``kind`` covers (0 if none)."""
        row = await self._db.fetchone("SELECT max(seq) FROM receipts WHERE kind = ?", (kind,))
        return int(row[0]) if row is not None and row[0] is not None else 0

    async def marks(self) -> Marks:
        async with self._db.reader() as conn:
            return await _marks(conn)

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
        async with write(self._db) as conn:
            pins = await _pins(conn)
            verdict = sender.pin_decision([p.public for p in pins], public, add=add or replace)
            if verdict == sender.ACCEPT:
                await conn.execute(
                    "UPDATE hubs SET node_id = ?, url = ? WHERE public = ?", (node_id, url, public)
                )
                return
            if verdict == sender.REFUSE:
                raise HubPinError(
                    f"this laptop is pinned to hub {pins[0].node_id}, not {node_id}",
                    f"laptop ini tersemat ke hub {pins[0].node_id}, bukan {node_id}",
                )
            if replace:
                await conn.execute("UPDATE hubs SET pinned_at = NULL")
            await conn.execute(
                "INSERT INTO hubs (public, node_id, url, pinned_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (public) DO UPDATE SET node_id = excluded.node_id,"
                " url = excluded.url, pinned_at = excluded.pinned_at",
                (public, node_id, url, now),
            )

    async def pinned_hubs(self) -> list[HubInfo]:
        """Every pinned hub, most recently pinned first."""
        async with self._db.reader() as conn:
            return await _pins(conn)

    async def pinned_hub(self) -> tuple[bytes, str, str] | None:
        """(public key, node id, url) of the pinned hub, or None."""
        info = await self.hub_info()
        return None if info is None else (info.public, info.node_id, info.url)

    async def hub_info(self) -> HubInfo | None:
        """The most recently pinned hub, or None."""
        pins = await self.pinned_hubs()
        return pins[0] if pins else None

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
        async with write(self._db) as conn:
            cur = await conn.execute(
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
        """Counts and where the entries are, from one snapshot of the store."""
        async with self._db.reader() as conn:
            await conn.execute("BEGIN")
            marks = await _marks(conn)
            rows = list(
                await conn.execute_fetchall(
                    "SELECT count(*), coalesce(max(seq), 0), coalesce(sum(flags != ''), 0)"
                    " FROM entries"
                )
            )
            count, last, flagged = (int(x) for x in rows[0])
            oldest = list(
                await conn.execute_fetchall(
                    "SELECT entered_at FROM entries WHERE seq > ? ORDER BY seq LIMIT 1",
                    (marks.local_after,),
                )
            )
            pins = await _pins(conn)
            await conn.execute("COMMIT")
        where = marks.where(last)
        return Summary(
            node_id=self.node_id,
            name=self.name,
            entries=count,
            last_seq=last,
            flagged=flagged,
            hub=pins[0] if pins else None,
            at_hub=where.at_hub,
            confirmed_upstream=where.confirmed_upstream,
            local_only=where.local_only,
            oldest_local_entered_at=int(oldest[0][0]) if oldest else None,
        )

    async def verify(self, *, page: int = PAGE) -> VerifyReport:
        """Re-check every stored record and the store's bookkeeping (``client.verify``)."""
        return await verify_mod.verify(self._db, self.identity.public, page=page)


async def _head(conn: aiosqlite.Connection) -> tuple[int, bytes]:
    """The head inside a write transaction, cross-checked with ``meta`` (else damaged)."""
    rows = list(
        await conn.execute_fetchall("SELECT seq, raw FROM entries ORDER BY seq DESC LIMIT 1")
    )
    seq, hash_ = (0, record.GENESIS)
    if rows:
        seq, hash_ = int(rows[0][0]), hashlib.sha256(bytes(rows[0][1])).digest()
    meta = await read_meta(conn)
    if meta.get("head_seq") != str(seq) or meta.get("head_hash") != hash_.hex():
        raise StoreDamagedError(
            f"the store's head (entry {meta.get('head_seq')}) does not match its last entry "
            f"({seq}); nothing was saved: run `c1client verify`",
            f"catatan kepala (entri {meta.get('head_seq')}) tidak cocok dengan entri terakhir "
            f"({seq}); tidak ada yang disimpan: jalankan `c1client verify`",
        )
    return seq, hash_


async def _marks(conn: aiosqlite.Connection) -> Marks:
    rows = await conn.execute_fetchall(
        "SELECT coalesce(max(CASE kind WHEN 'hub' THEN seq END), 0),"
        " coalesce(max(CASE kind WHEN 'upstream' THEN seq END), 0) FROM receipts"
    )
    hub, upstream = next(iter(rows))
    return Marks(int(hub), int(upstream))


async def _pins(conn: aiosqlite.Connection) -> list[HubInfo]:
    rows = await conn.execute_fetchall(
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


def _receipt_error(check: sender.ReceiptCheck, pins: list[HubInfo]) -> ReceiptError:
    r = check.receipt
    if check.verdict == sender.UNSIGNED:
        return ReceiptError(
            f"receipt does not verify: {check.detail}", f"tanda terima tidak sah: {check.detail}"
        )
    if check.verdict == sender.OTHER_ORIGIN:
        return ReceiptError(
            "receipt is for another laptop's entries", "tanda terima ini untuk entri laptop lain"
        )
    if check.verdict == sender.WRONG_ISSUER:
        return ReceiptError(
            f"receipt was issued by {fingerprint(r.issuer)}, not by the pinned hub "
            f"{pins[0].node_id}",
            f"tanda terima dari {fingerprint(r.issuer)}, bukan dari hub yang disematkan "
            f"{pins[0].node_id}",
        )
    if check.verdict == sender.NOT_HELD:
        return ReceiptError(
            f"receipt covers entry {r.seq}, but this laptop has no entry {r.seq}",
            f"tanda terima mencakup entri {r.seq}, tetapi laptop ini tidak punya entri {r.seq}",
        )
    return ReceiptError(
        f"receipt names a different entry {r.seq} than the one held here "
        "(a possible fork: stop and call the coordinator)",
        f"tanda terima menyebut entri {r.seq} yang berbeda dari yang tersimpan "
        "(kemungkinan fork: berhenti dan hubungi koordinator)",
    )
