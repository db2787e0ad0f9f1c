"""Where this laptop's scans are: the ``scans`` table of ``client.db`` (migration 3).

Each page image named by an entry has one row: its hash, the first seq naming it, and its
state as the hub last answered a lacking question (``local``, ``at_hub``, ``upstream``;
docs/protocol.md "Scans"). Rows are added in the transaction that appends the entries
(``add``); entries older than the table are indexed once by ``index`` (``meta`` ``scans_seq``
says how far). ``Scans`` is what ``c1client status`` shows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiosqlite

from hub.protocol import entry, record
from hub.protocol.errors import ProtocolError
from hub.shared.blobs import BlobStore
from hub.shared.db import Database
from hub.shared.errors import BlobError

from .db import write

LOCAL, AT_HUB, UPSTREAM = "local", "at_hub", "upstream"
META_KEY = "scans_seq"
PAGE = 500


def scans_of(body: bytes) -> list[str]:
    """The scan hashes an entry body names (none for a body that does not decode)."""
    try:
        return list(entry.decode_body(body).get("scans", []))
    except ProtocolError:
        return []


async def add(conn: aiosqlite.Connection, items: Iterable[tuple[int, list[str]]]) -> None:
    """In the appending transaction: the scans of new entries, (seq, hashes)."""
    rows = [(h, seq) for seq, hashes in items for h in hashes]
    await conn.executemany("INSERT OR IGNORE INTO scans (hash, seq) VALUES (?, ?)", rows)


async def mark(conn: aiosqlite.Connection, seq: int) -> None:
    await conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (META_KEY, str(seq))
    )


async def marked_append(conn: aiosqlite.Connection, first: int, last: int) -> None:
    """Entries ``first``..``last`` were appended with their scans: move the mark along if
    everything before them was indexed (else ``index`` catches up)."""
    row = await (await conn.execute("SELECT value FROM meta WHERE key = ?", (META_KEY,))).fetchone()
    if int(row[0] if row is not None else 0) >= first - 1:
        await mark(conn, last)


async def index(db: Database) -> None:
    """Index the scans of entries stored before the table existed (once, a page at a time)."""
    while True:
        row = await db.fetchone("SELECT value FROM meta WHERE key = ?", (META_KEY,))
        done = int(row[0]) if row is not None else 0
        rows = await db.fetchall(
            "SELECT seq, raw FROM entries WHERE seq > ? ORDER BY seq LIMIT ?", (done, PAGE)
        )
        if not rows:
            return
        items = [(int(seq), scans_of(record.decode(bytes(raw)).body)) for seq, raw in rows]
        async with write(db) as conn:
            await add(conn, items)
            await mark(conn, items[-1][0])


async def to_send(db: Database, upto_seq: int) -> list[tuple[str, str]]:
    """(hash, state) of scans of entries up to ``upto_seq`` (those the hub holds) that
    upstream is not known to hold, in seq order."""
    rows = await db.fetchall(
        "SELECT hash, state FROM scans WHERE seq <= ? AND state != ? ORDER BY seq, hash",
        (upto_seq, UPSTREAM),
    )
    return [(str(h), str(st)) for h, st in rows]


async def set_states(db: Database, states: Mapping[str, str]) -> None:
    if not states:
        return
    async with write(db) as conn:
        await conn.executemany(
            "UPDATE scans SET state = ? WHERE hash = ?", [(st, h) for h, st in states.items()]
        )


@dataclass(frozen=True, slots=True)
class Scans:
    """``c1client status`` ``scans``: page images by where they are (``local`` + ``at_hub``
    + ``confirmed_upstream`` = the pages named by this laptop's entries), and the bytes of
    the local ones still to send."""

    local: int
    at_hub: int
    confirmed_upstream: int
    bytes_pending: int

    def to_dict(self) -> dict[str, int]:
        return {
            "local": self.local,
            "at_hub": self.at_hub,
            "confirmed_upstream": self.confirmed_upstream,
            "bytes_pending": self.bytes_pending,
        }


async def summary(db: Database, blobs: BlobStore) -> Scans:
    counts = dict.fromkeys((LOCAL, AT_HUB, UPSTREAM), 0)
    pending = 0
    for h, st in await db.fetchall("SELECT hash, state FROM scans"):
        counts[str(st)] += 1
        if st == LOCAL:
            pending += _size(blobs, str(h))
    return Scans(counts[LOCAL], counts[AT_HUB], counts[UPSTREAM], pending)


async def states_of(db: Database) -> dict[str, str]:
    """The state of every scan an entry names (hash -> state)."""
    rows: Any = await db.fetchall("SELECT hash, state FROM scans")
    return {str(h): str(st) for h, st in rows}


COMPLETE, WAITING = "complete", "waiting"


def entry_state(scans: Iterable[str], where: Mapping[str, str]) -> str | None:
    """An entry's scans as the station shows them: ``complete`` (lengkap) once the hub holds
    every page, ``waiting`` (menunggu) before; None for an entry without scans."""
    hashes = list(scans)
    if not hashes:
        return None
    return COMPLETE if all(where.get(h, LOCAL) != LOCAL for h in hashes) else WAITING


def _size(blobs: BlobStore, digest: str) -> int:
    try:
        return blobs.path(digest).stat().st_size
    except (OSError, BlobError):
        return 0
