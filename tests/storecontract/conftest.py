"""The storage contract's backends: every test of this folder runs once per store behind
``hub.storage.HubStorage`` (the litestream pattern: one contract, one fixture per backend).

- ``sqlite``: ``hub.store.HubStore`` in a temporary folder;
- ``postgres``: ``hub.pg.store.PgStore`` on a fresh database of the test PostgreSQL server
  (tests/servers/postgres.py: skipped loudly when PostgreSQL is not installed, failed in CI).

``open_store(refuse_unknown=..., quotas=...)`` opens one more store on the same backend and
data: for PostgreSQL a second receiver on the same database, for SQLite the same folder again
after the first was closed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from hub.protocol.quota import Quotas
from hub.storage import HubStorage

Opener = Callable[..., Awaitable[HubStorage]]


@pytest.fixture(params=["sqlite", "postgres"])
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    opened: list[HubStorage] = []
    if request.param == "postgres":
        dsn = request.getfixturevalue("pg_dsn")
        from hub.pg.store import PgStore

        async def make(refuse_unknown: bool = False, quotas: Quotas | None = None) -> HubStorage:
            s = await PgStore.open(dsn, refuse_unknown=refuse_unknown, quotas=quotas, max_size=4)
            opened.append(s)
            return s

    else:
        from hub.store import HubStore

        async def make(refuse_unknown: bool = False, quotas: Quotas | None = None) -> HubStorage:
            s = await HubStore.open(tmp_path, refuse_unknown=refuse_unknown, quotas=quotas)
            opened.append(s)
            return s

    try:
        yield make
    finally:
        for s in opened:
            await s.close()


@pytest.fixture
async def store(open_store: Opener) -> HubStorage:
    return await open_store()
