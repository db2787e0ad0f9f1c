"""The PostgreSQL store's access to its database: one-statement calls, transactions run again
after a serialization failure or deadlock, and a database that is away as ``PgUnavailable``.

``Db(pool)``: ``fetch``/``fetchrow``/``fetchval``/``execute`` (one statement each, outside a
write transaction), ``tx()`` (one READ COMMITTED transaction on a pooled connection),
``read()`` (a pooled connection for reads) and ``run(what, fn, *args)`` (``fn(con, *args)`` in
a transaction, again on 40001/40P01 or ``Raced``, up to ``RETRIES`` times with jittered
backoff). A connection that breaks (a database restart, an admin shutdown) is
``PgUnavailable``: HTTP 503, nothing receipted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from hub.protocol.errors import ProtocolError

from .schema import Conn

log = logging.getLogger(__name__)

RETRIES = 5


class Raced(Exception):
    """A device this transaction planned as new was made by another one meanwhile: run the
    transaction again (it then reads that device under its lock)."""


RETRY_ON = (
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    Raced,
)
# The database is gone or restarting: nothing of the transaction can be known to be stored.
UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, crash recovery
    asyncpg.exceptions.CannotConnectNowError,
)


class PgUnavailable(ProtocolError):
    """The database cannot be reached or failed mid-transaction: nothing is receipted, the
    sender keeps its records and tries again (HTTP 503)."""

    code = "unavailable"


def away(exc: BaseException) -> PgUnavailable:
    return PgUnavailable(
        f"the database cannot be read now ({type(exc).__name__}: {exc}); try again shortly"
    )


class Db:
    """The pool's calls (see the module docstring). ``retries`` counts the transactions run
    again."""

    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool
        self.retries = 0  # transactions run again after a serialization failure or deadlock

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        try:
            return await self._pool.fetch(sql, *args)
        except UNAVAILABLE as exc:
            raise away(exc) from exc

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        try:
            return await self._pool.fetchrow(sql, *args)
        except UNAVAILABLE as exc:
            raise away(exc) from exc

    async def fetchval(self, sql: str, *args: Any) -> Any:
        try:
            return await self._pool.fetchval(sql, *args)
        except UNAVAILABLE as exc:
            raise away(exc) from exc

    async def execute(self, sql: str, *args: Any) -> str:
        try:
            return await self._pool.execute(sql, *args)
        except UNAVAILABLE as exc:
            raise away(exc) from exc

    @contextlib.asynccontextmanager
    async def tx(self) -> AsyncIterator[Conn]:
        """One transaction, READ COMMITTED; connection failures become PgUnavailable."""
        try:
            async with self._pool.acquire() as con, con.transaction():
                yield con
        except UNAVAILABLE as exc:
            raise PgUnavailable(
                f"the database failed during a write ({type(exc).__name__}: {exc}); nothing "
                "of it is receipted. The sender keeps its entries and sends them again."
            ) from exc

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[Conn]:
        """A pooled connection for reads; a database away becomes ``PgUnavailable``."""
        try:
            async with self._pool.acquire() as con:
                yield con
        except UNAVAILABLE as exc:
            raise away(exc) from exc

    async def run(self, what: str, fn: Any, *args: Any) -> Any:
        """``fn(con, *args)`` in a transaction, again after a serialization failure or a
        deadlock (the whole transaction rolled back, so running it again is safe)."""
        for attempt in range(RETRIES + 1):
            try:
                async with self.tx() as con:
                    return await fn(con, *args)
            except RETRY_ON as exc:
                if attempt == RETRIES:
                    raise
                self.retries += 1
                log.debug("%s: %s, running the transaction again", what, type(exc).__name__)
                await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))
        raise AssertionError("unreachable")
