"""One owner for one SQLite file (STYLE 4): a single writer, readers that see only committed data.

``Database`` holds two kinds of connection to the file:

- **the writer**, used only inside ``transaction()`` (``BEGIN IMMEDIATE`` ... ``COMMIT``),
  serialised by one asyncio lock in this process and by SQLite's write lock across processes
  (waiting up to the busy timeout);
- **readers** (``query_only``), used by ``fetchall``/``fetchone``/``iterate``. In WAL mode a
  reader sees the database as of its last COMMIT, so no reader can ever see the rows of a
  transaction that is still open, or that later fails to commit.

Every file is opened the same way: WAL (checked to have taken effect), ``synchronous=FULL``
(a COMMIT is durable when it returns), foreign keys on, a busy timeout, and numbered
migrations run under the write lock (``PRAGMA user_version``). Migrations hold the triggers
that make signed records immutable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from .errors import DatabaseError, SchemaTooNew, StoreBusy, WriteFailed

log = logging.getLogger(__name__)

# A migration: one SQL script (split at statement boundaries) or a sequence of statements.
Migration = str | Sequence[str]
Row = sqlite3.Row | tuple[Any, ...]


def statements(migration: Migration) -> list[str]:
    """The complete SQL statements of a migration (triggers hold ';' inside)."""
    if not isinstance(migration, str):
        return [s for s in migration if s.strip()]
    out, buf = [], ""
    for part in migration.split(";"):
        buf += part + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \n;"):
                out.append(buf.strip())
            buf = ""
    return out


class Database:
    """``db = await Database.open(path, MIGRATIONS)`` ... ``await db.close()``."""

    def __init__(self, path: Path, writer: aiosqlite.Connection, busy_timeout: float):
        self.path = path
        self._writer = writer
        self._busy_timeout = busy_timeout
        self._write_lock = asyncio.Lock()
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all_readers: list[aiosqlite.Connection] = []
        self._max_readers = 2
        self._opening = 0
        self.commits = 0
        # Fault injection for tests: awaited inside every write transaction, just before its
        # COMMIT (while the transaction's rows exist only on the writer connection).
        self.before_commit: Callable[[], Awaitable[None]] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        path: Path,
        migrations: Sequence[Migration],
        *,
        readers: int = 2,
        busy_timeout: float = 30.0,
        label: str = "database",
    ) -> Database:
        """Open (creating if needed) and migrate ``path``.

        SchemaTooNew if the file was written by a newer program; StoreBusy if another process
        holds the write lock for longer than ``busy_timeout`` seconds; DatabaseError if WAL
        cannot be used here.
        """
        writer = await _connect(path, busy_timeout)
        try:
            await _migrate(writer, path, migrations, label)
        except BaseException:
            await writer.close()
            raise
        db = cls(path, writer, busy_timeout)
        db._max_readers = max(1, readers)
        return db

    async def close(self) -> None:
        async with self._write_lock:
            for conn in self._all_readers:
                await conn.close()
            self._all_readers.clear()
            await self._writer.close()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- writing -----------------------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        return self._write_lock.locked()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One durable write transaction. The body gets the writer connection; on any
        exception the transaction is rolled back (and a SQLite error becomes WriteFailed).
        Returns only after COMMIT, so what the body wrote is on disk."""
        async with self._write_lock:
            try:
                await self._writer.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreBusy(
                    f"{self.path} is busy (another process is writing): {exc}"
                ) from None
            try:
                yield self._writer
                if self.before_commit is not None:
                    await self.before_commit()
                await self._writer.execute("COMMIT")
            except BaseException as exc:
                await self._rollback()
                if isinstance(exc, sqlite3.Error):
                    raise WriteFailed(f"{self.path}: the write failed: {exc}", exc) from exc
                raise
            self.commits += 1

    async def _rollback(self) -> None:
        if not self._writer.in_transaction:
            return
        try:
            await self._writer.execute("ROLLBACK")
        except sqlite3.Error as exc:  # the connection is broken; the next BEGIN will say so
            log.warning("%s: rollback failed: %s", self.path, exc)

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """One statement in its own durable transaction; returns the rows it changed."""
        async with self.transaction() as conn:
            cur = await conn.execute(sql, tuple(params))
            n = cur.rowcount
            await cur.close()
        return n

    # -- reading (committed data only) -------------------------------------------------------

    @contextlib.asynccontextmanager
    async def reader(self) -> AsyncIterator[aiosqlite.Connection]:
        """A read-only connection for a while (several queries see one another's snapshot only
        if run inside ``BEGIN`` ... ``COMMIT`` by the caller)."""
        conn = await self._take_reader()
        try:
            yield conn
        finally:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    await conn.execute("ROLLBACK")
            self._readers.put_nowait(conn)

    async def _take_reader(self) -> aiosqlite.Connection:
        with contextlib.suppress(asyncio.QueueEmpty):
            return self._readers.get_nowait()
        if len(self._all_readers) + self._opening < self._max_readers:
            self._opening += 1
            try:
                conn = await aiosqlite.connect(self.path, isolation_level=None)
                try:
                    await conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
                    await conn.execute("PRAGMA query_only = ON")
                except BaseException:
                    await conn.close()
                    raise
            finally:
                self._opening -= 1
            self._all_readers.append(conn)
            return conn
        return await self._readers.get()

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        async with self.reader() as conn:
            return list(await conn.execute_fetchall(sql, tuple(params)))

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def iterate(self, sql: str, params: Iterable[Any] = ()) -> AsyncIterator[Row]:
        """Rows streamed from one consistent snapshot (a reader is held until the end)."""
        async with self.reader() as conn, conn.execute(sql, tuple(params)) as cur:
            async for row in cur:
                yield row


async def _connect(path: Path, busy_timeout: float) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout)
    try:
        await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        rows = list(await conn.execute_fetchall("PRAGMA journal_mode = WAL"))
        if not rows or str(rows[0][0]).lower() != "wal":
            raise DatabaseError(f"{path}: cannot switch SQLite to WAL mode")
        await conn.execute("PRAGMA synchronous = FULL")
        await conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        await conn.close()
        raise
    return conn


async def _migrate(
    conn: aiosqlite.Connection, path: Path, migrations: Sequence[Migration], label: str
) -> None:
    want = len(migrations)
    rows = list(await conn.execute_fetchall("PRAGMA user_version"))
    if int(rows[0][0]) == want:
        return
    try:
        await conn.execute("BEGIN IMMEDIATE")  # re-read under the write lock: another may race
    except sqlite3.OperationalError as exc:
        raise StoreBusy(f"{path} is busy (another process is writing): {exc}") from None
    try:
        rows = list(await conn.execute_fetchall("PRAGMA user_version"))
        version = int(rows[0][0])
        if version > want:
            raise SchemaTooNew(
                f"{path} is at schema version {version}, newer than this program knows "
                f"({want}); upgrade {label}",
                version=version,
            )
        for n in range(version, want):
            for stmt in statements(migrations[n]):
                await conn.execute(stmt)
            await conn.execute(f"PRAGMA user_version = {n + 1}")
            log.info("%s migrated to schema %d", path, n + 1)
    except BaseException:
        await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")
