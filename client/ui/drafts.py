"""``ui.db``: what the station keeps besides the signed log (which stays in ``client.db``).

- ``drafts``   forms being typed, **unsigned**, kept after every change so that a reload, a
               browser crash or a restart of ``c1client ui`` loses nothing. A draft is saved at
               most once: ``state`` goes from ``open`` to ``saved`` (with the entry's ``seq``)
               or ``discarded``, never back.
- ``layouts``  the candidate rows of the last saved form per form type and region, so the next
               form of the same kelurahan opens with the same rows
- ``inbox``    files seen in the scanner's folder: their hash, cached by size and mtime
- ``saves``    one row per entry saved here: who, when, how many keystrokes (pace statistics)
- ``sessions`` operator sign-ins; ``prefs`` the station's preferences (language, ...)

One aiosqlite connection, statements serialised by one lock; WAL with ``synchronous=NORMAL``:
a draft write survives any crash of the program or the browser (power loss may lose the last
keystrokes of a draft, never a signed entry: those are in ``client.db``, ``synchronous=FULL``).
Numbered migrations in ``PRAGMA user_version``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite

DB_FILE = "ui.db"
OPEN, SAVED, DISCARDED = "open", "saved", "discarded"

MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE drafts (
            id TEXT PRIMARY KEY,
            operator TEXT NOT NULL,
            form TEXT NOT NULL,
            tps TEXT NOT NULL,
            mode TEXT NOT NULL,
            supersedes TEXT,
            work TEXT NOT NULL DEFAULT '{}',
            cells TEXT NOT NULL DEFAULT '{}',
            rows TEXT NOT NULL DEFAULT '{}',
            scans TEXT NOT NULL DEFAULT '[]',
            note TEXT NOT NULL DEFAULT '',
            rev INTEGER NOT NULL DEFAULT 0,
            keystrokes INTEGER NOT NULL DEFAULT 0,
            refused INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            state TEXT NOT NULL DEFAULT 'open',
            seq INTEGER
        )""",
        "CREATE INDEX drafts_state ON drafts (state, updated_at)",
        """CREATE TABLE layouts (
            form TEXT NOT NULL, region TEXT NOT NULL, rows TEXT NOT NULL,
            PRIMARY KEY (form, region)
        )""",
        """CREATE TABLE inbox (
            path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
            hash TEXT NOT NULL
        )""",
        """CREATE TABLE saves (
            seq INTEGER PRIMARY KEY, operator TEXT NOT NULL, session TEXT NOT NULL,
            started_at REAL NOT NULL, saved_at REAL NOT NULL, keystrokes INTEGER NOT NULL,
            refused INTEGER NOT NULL, flagged INTEGER NOT NULL, form TEXT NOT NULL,
            tps TEXT NOT NULL, scans TEXT NOT NULL DEFAULT '[]'
        )""",
        """CREATE TABLE sessions (
            id TEXT PRIMARY KEY, operator TEXT NOT NULL, started_at REAL NOT NULL
        )""",
        "CREATE TABLE prefs (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(slots=True)
class Draft:
    id: str
    operator: str
    form: str
    tps: str
    mode: str  # new | second | correction | koreksi
    supersedes: str | None = None
    work: dict[str, Any] = field(default_factory=dict)  # the hub's readings (digests)
    cells: dict[str, str] = field(default_factory=dict)
    rows: dict[str, Any] = field(default_factory=dict)
    scans: list[str] = field(default_factory=list)
    note: str = ""
    rev: int = 0
    keystrokes: int = 0
    refused: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0
    state: str = OPEN
    seq: int | None = None


_COLS = (
    "id, operator, form, tps, mode, supersedes, work, cells, rows, scans, note, rev, keystrokes,"
    " refused, created_at, updated_at, state, seq"
)


def _draft(row: Sequence[Any]) -> Draft:
    return Draft(
        id=row[0], operator=row[1], form=row[2], tps=row[3], mode=row[4], supersedes=row[5],
        work=json.loads(row[6]), cells=json.loads(row[7]), rows=json.loads(row[8]),
        scans=json.loads(row[9]), note=row[10], rev=row[11], keystrokes=row[12],
        refused=row[13], created_at=row[14], updated_at=row[15], state=row[16], seq=row[17],
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class SaveRow:
    seq: int
    operator: str
    session: str
    started_at: float
    saved_at: float
    keystrokes: int
    refused: int
    flagged: bool
    form: str
    tps: str


class UiStore:
    """Owner of ``ui.db``: ``await UiStore.open(data_dir)`` ... ``await store.close()``."""

    def __init__(self, db: aiosqlite.Connection):
        self._db = db
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, data_dir: Path) -> UiStore:
        path = data_dir / DB_FILE
        db = await aiosqlite.connect(path, isolation_level=None, timeout=30)
        try:
            await db.execute("PRAGMA busy_timeout = 30000")
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = NORMAL")
            rows = list(await db.execute_fetchall("PRAGMA user_version"))
            version = int(rows[0][0])
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"{path} was written by a newer c1client (schema {version})")
            if version < SCHEMA_VERSION:
                await db.execute("BEGIN IMMEDIATE")
                for n in range(version, SCHEMA_VERSION):
                    for stmt in MIGRATIONS[n]:
                        await db.execute(stmt)
                    await db.execute(f"PRAGMA user_version = {n + 1}")
                await db.execute("COMMIT")
        except BaseException:
            await db.close()
            raise
        return cls(db)

    async def close(self) -> None:
        async with self._lock:
            await self._db.close()

    async def _exec(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._lock:
            cur = await self._db.execute(sql, params)
            n = cur.rowcount
            await cur.close()
            return n

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self._lock:
            return list(await self._db.execute_fetchall(sql, params))

    # -- drafts -------------------------------------------------------------------------------

    async def create(self, d: Draft, now: float) -> Draft:
        d.id = d.id or secrets.token_hex(8)
        d.created_at = d.updated_at = now
        await self._exec(
            f"INSERT INTO drafts ({_COLS}) VALUES ({', '.join('?' * 18)})",
            (
                d.id, d.operator, d.form, d.tps, d.mode, d.supersedes, json.dumps(d.work),
                json.dumps(d.cells), json.dumps(d.rows), json.dumps(d.scans), d.note, d.rev,
                d.keystrokes, d.refused, d.created_at, d.updated_at, d.state, d.seq,
            ),
        )  # fmt: skip
        return d

    async def get(self, draft_id: str) -> Draft | None:
        rows = await self._all(f"SELECT {_COLS} FROM drafts WHERE id = ?", (draft_id,))
        return _draft(rows[0]) if rows else None

    async def current(self, operator: str) -> Draft | None:
        """The operator's open draft most recently changed, if any."""
        rows = await self._all(
            f"SELECT {_COLS} FROM drafts WHERE state = 'open' AND operator = ?"
            " ORDER BY updated_at DESC LIMIT 1",
            (operator,),
        )
        return _draft(rows[0]) if rows else None

    async def update(
        self,
        draft_id: str,
        *,
        rev: int,
        cells: dict[str, str],
        rows: dict[str, Any],
        keystrokes: int,
        refused: int,
        now: float,
    ) -> bool:
        """Keep the newest state of an open draft; an older ``rev`` (a late request) changes
        nothing. Returns whether it was kept."""
        n = await self._exec(
            "UPDATE drafts SET cells = ?, rows = ?, rev = ?, keystrokes = max(keystrokes, ?),"
            " refused = max(refused, ?), updated_at = ? WHERE id = ? AND state = 'open'"
            " AND rev <= ?",
            (json.dumps(cells), json.dumps(rows), rev, keystrokes, refused, now, draft_id, rev),
        )
        return n > 0  # 0: not open (saved or discarded), or a late request for an older rev

    async def set_scans(self, draft_id: str, scans: list[str], now: float) -> None:
        await self._exec(
            "UPDATE drafts SET scans = ?, updated_at = ? WHERE id = ? AND state = 'open'",
            (json.dumps(scans), now, draft_id),
        )

    async def finish(self, draft_id: str, state: str, seq: int | None, now: float) -> bool:
        """Close an open draft (saved as ``seq``, or discarded); False if it was not open."""
        n = await self._exec(
            "UPDATE drafts SET state = ?, seq = ?, updated_at = ? WHERE id = ? AND state = 'open'",
            (state, seq, now, draft_id),
        )
        return n > 0

    async def draft_for_seq(self, seq: int) -> Draft | None:
        rows = await self._all(f"SELECT {_COLS} FROM drafts WHERE seq = ?", (seq,))
        return _draft(rows[0]) if rows else None

    # -- row memory ---------------------------------------------------------------------------

    async def layout(self, form: str, tps: str) -> dict[str, Any] | None:
        """Rows remembered for ``form`` nearest to ``tps``: same kelurahan, else kecamatan,
        else kabupaten/kota, else province."""
        for n in (10, 6, 4, 2):
            rows = await self._all(
                "SELECT rows FROM layouts WHERE form = ? AND region = ?", (form, tps[:n])
            )
            if rows:
                out: dict[str, Any] = json.loads(rows[0][0])
                return out
        return None

    async def remember_layout(self, form: str, tps: str, rows: dict[str, Any]) -> None:
        text = json.dumps(rows)
        async with self._lock:
            await self._db.execute("BEGIN")
            await self._db.executemany(
                "INSERT OR REPLACE INTO layouts (form, region, rows) VALUES (?, ?, ?)",
                [(form, tps[:n], text) for n in (10, 6, 4, 2)],
            )
            await self._db.execute("COMMIT")

    # -- scanner folder -----------------------------------------------------------------------

    async def inbox_hash(self, path: str, size: int, mtime_ns: int) -> str | None:
        rows = await self._all(
            "SELECT hash FROM inbox WHERE path = ? AND size = ? AND mtime_ns = ?",
            (path, size, mtime_ns),
        )
        return str(rows[0][0]) if rows else None

    async def remember_inbox(self, path: str, size: int, mtime_ns: int, digest: str) -> None:
        await self._exec(
            "INSERT OR REPLACE INTO inbox (path, size, mtime_ns, hash) VALUES (?, ?, ?, ?)",
            (path, size, mtime_ns, digest),
        )

    async def used_scans(self) -> dict[str, int]:
        """Scan hash -> the seq of the (last) entry saved here with it."""
        out: dict[str, int] = {}
        for seq, scans in await self._all("SELECT seq, scans FROM saves ORDER BY seq"):
            for h in json.loads(scans):
                out[h] = int(seq)
        return out

    # -- sessions, saves, prefs ---------------------------------------------------------------

    async def sign_in(self, operator: str, now: float) -> str:
        sid = secrets.token_hex(8)
        await self._exec(
            "INSERT INTO sessions (id, operator, started_at) VALUES (?, ?, ?)", (sid, operator, now)
        )
        await self.set_pref("operator", operator)
        await self.set_pref("session", sid)
        return sid

    async def session_started(self, sid: str) -> float | None:
        rows = await self._all("SELECT started_at FROM sessions WHERE id = ?", (sid,))
        return float(rows[0][0]) if rows else None

    async def record_save(self, row: SaveRow, scans: list[str]) -> None:
        await self._exec(
            "INSERT OR IGNORE INTO saves (seq, operator, session, started_at, saved_at,"
            " keystrokes, refused, flagged, form, tps, scans) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                row.seq, row.operator, row.session, row.started_at, row.saved_at, row.keystrokes,
                row.refused, int(row.flagged), row.form, row.tps, json.dumps(scans),
            ),
        )  # fmt: skip

    async def saves(self, session: str) -> list[SaveRow]:
        rows = await self._all(
            "SELECT seq, operator, session, started_at, saved_at, keystrokes, refused, flagged,"
            " form, tps FROM saves WHERE session = ? ORDER BY seq",
            (session,),
        )
        return [
            SaveRow(
                seq=r[0], operator=r[1], session=r[2], started_at=r[3], saved_at=r[4],
                keystrokes=r[5], refused=r[6], flagged=bool(r[7]), form=r[8], tps=r[9],
            )
            for r in rows
        ]  # fmt: skip

    async def saved_operators(self) -> dict[int, str]:
        return {int(s): str(o) for s, o in await self._all("SELECT seq, operator FROM saves")}

    async def pref(self, key: str) -> str | None:
        rows = await self._all("SELECT value FROM prefs WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    async def set_pref(self, key: str, value: str | None) -> None:
        if value is None:
            await self._exec("DELETE FROM prefs WHERE key = ?", (key,))
        else:
            await self._exec(
                "INSERT OR REPLACE INTO prefs (key, value) VALUES (?, ?)", (key, value)
            )
