"""``client.db``: the laptop's SQLite file, its schema, and how the laptop opens and writes it.

The file has one owner per process, ``hub.shared.db.Database``: one writer connection used
only inside ``BEGIN IMMEDIATE`` ... ``COMMIT`` (so two ``c1client`` processes on one data
folder take turns, waiting up to the busy timeout), and read-only connections that see only
committed data. WAL (checked to have taken effect), ``synchronous=FULL``: a write returns after
its COMMIT is durable. This module words the database's failures for the operator
(``StoreError`` in English and Indonesian).

Tables (numbered migrations, ``PRAGMA user_version``; existing files are migrated in place):

- ``meta``      name, public key, node id, creation time, and the head (last seq + hash)
- ``entries``   ``seq`` 1..N, ``raw`` = the exact record bytes from ``record.make`` (never
                re-encoded), and columns derived from the body for queries. Triggers refuse
                every UPDATE and DELETE (DESIGN §2.2).
- ``receipts``  signed receipts from the hub (``kind='hub'``) and from upstream
                (``kind='upstream'``) for this laptop's log
- ``hubs``      hubs this laptop has known; pinned ones have ``pinned_at`` set, with what each
                last said of this laptop (``state``, ``code``; migration 2)
- ``scans``     each page image named by an entry (``hash``, the first ``seq`` naming it) and
                where it is: ``local``, ``at_hub``, ``upstream`` (as the hub last answered;
                migration 3). Filled when entries are appended, and for entries older than the
                table by ``ClientStore.index_scans`` (``meta`` ``scans_seq``: indexed up to)
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from hub.protocol import entry, rules
from hub.shared import errors as shared
from hub.shared.db import Database

from .errors import StoreError

DB_FILE = "client.db"

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
    (  # 3: the scans named by this laptop's entries, and where each one is
        """CREATE TABLE scans (
            hash TEXT PRIMARY KEY,
            seq INTEGER NOT NULL,
            state TEXT NOT NULL DEFAULT 'local' CHECK (state IN ('local', 'at_hub', 'upstream'))
        )""",
        "CREATE INDEX scans_seq ON scans (seq)",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)


async def open_database(path: Path, busy_timeout: float) -> Database:
    """Open (creating if needed) and migrate ``path``; StoreError when it cannot be used."""
    try:
        return await Database.open(path, MIGRATIONS, busy_timeout=busy_timeout, label="c1client")
    except shared.SchemaTooNew as exc:
        raise StoreError(
            f"{path} was written by a newer c1client (schema {exc.version}); upgrade c1client",
            f"{path} dibuat oleh c1client yang lebih baru (skema {exc.version}); perbarui c1client",
        ) from None
    except shared.StoreBusy as exc:
        raise _busy(exc) from None
    except shared.DatabaseError:
        raise StoreError(
            f"{path}: cannot switch SQLite to WAL mode",
            f"{path}: SQLite tidak dapat memakai mode WAL",
        ) from None
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"{path} cannot be used as this laptop's store: {exc}",
            f"{path} tidak dapat dipakai sebagai penyimpanan laptop ini: {exc}",
        ) from None


@contextlib.asynccontextmanager
async def write(db: Database) -> AsyncIterator[aiosqlite.Connection]:
    """One durable write transaction on the writer; StoreError if it cannot start or fails."""
    try:
        async with db.transaction() as conn:
            yield conn
    except shared.StoreBusy as exc:
        raise _busy(exc) from None
    except shared.WriteFailed as exc:
        raise StoreError(
            f"the store could not save: {exc.cause}",
            f"penyimpanan gagal menyimpan: {exc.cause}",
        ) from exc


def _busy(exc: shared.DatabaseError) -> StoreError:
    return StoreError(
        f"the store is busy (another c1client is writing to it): {exc.message}",
        f"penyimpanan sedang dipakai (c1client lain sedang menulis): {exc.message}",
        code="store_busy",
    )


async def read_meta(conn: aiosqlite.Connection) -> dict[str, str]:
    return {str(k): str(v) for k, v in await conn.execute_fetchall("SELECT key, value FROM meta")}


# -- the entries table -------------------------------------------------------------------------


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


ENTRY_COLS = "seq, hash, raw, election, form, tps, flags, entered_at"


def entry_row(row: Any) -> StoredEntry:
    """A row of ``SELECT {ENTRY_COLS} FROM entries``."""
    flags = str(row[6])
    return StoredEntry(
        seq=int(row[0]),
        hash=bytes(row[1]),
        raw=bytes(row[2]),
        election=str(row[3]),
        form=str(row[4]),
        tps=str(row[5]),
        flags=tuple(flags.split(",")) if flags else (),
        entered_at=int(row[7]),
    )


@dataclass(frozen=True, slots=True)
class Columns:
    """The query columns of an entry, all derived from its signed body."""

    election: str
    form: str
    tps: str
    flags: str
    entered_at: int

    @classmethod
    def of(cls, body: dict[str, Any]) -> Columns:
        """From a decoded body (``entry.decode_body``)."""
        flags = ",".join(rules.rule_ids(rules.check(body)))
        return cls(body["election"], body["form"], body["tps"], flags, body["entered_at"])

    @classmethod
    def stored(cls, e: StoredEntry) -> Columns:
        return cls(e.election, e.form, e.tps, ",".join(e.flags), e.entered_at)


def columns(body: bytes) -> Columns:
    """The query columns of a body; validates it (raises CodecError/SchemaError)."""
    return Columns.of(entry.decode_body(body))
