"""Reads while PostgreSQL is away: the receiver answers ``unavailable`` (HTTP 503, the sender
backs off) instead of an internal error, and reads again once the database is back, without a
restart."""

from __future__ import annotations

import asyncio

import pytest

from hub.pg.store import PgStore, PgUnavailable
from hub.storage import NodeInfo
from tests.pg.helpers import ident
from tests.servers.postgres import PostgresServer


async def test_reads_while_the_database_is_away_are_unavailable(
    postgres_server: PostgresServer, pg_dsn: str
) -> None:
    store = await PgStore.open(pg_dsn, max_size=2)
    who = ident(80)
    try:
        await store.enroll(who.public, "A", "laptop", 1)
        await asyncio.to_thread(postgres_server.stop, "immediate")
        try:
            for read in (
                lambda: store.heads_of([who.public]),
                lambda: store.device(who.public),
                lambda: store.status(NodeInfo("R", "r", "root", bytes(32)), 0),
                lambda: store.results("pemilu-2024"),
            ):
                with pytest.raises(PgUnavailable) as err:
                    await read()
                assert err.value.code == "unavailable"
        finally:
            await asyncio.to_thread(postgres_server.run)
        d = await store.device(who.public)  # the same pool, new connections
        assert d is not None and d.name == "A"
    finally:
        await store.close()
