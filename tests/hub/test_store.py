"""The hub store's failure paths, on a real SQLite file with injected faults."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from hub.protocol.identity import Identity
from hub.store import HubStore, StoreUnavailable, examine_batch
from tests.helpers import chain, forms


async def test_failed_commit_answers_the_pusher_and_loses_nothing(tmp_path: Path) -> None:
    store = await HubStore.open(tmp_path)
    try:
        laptop = Identity.generate()
        recs = [r.raw for r in chain(laptop, forms(4))]
        await store.push(await examine_batch(None, recs[:2], None), 1)
        real = store._commit

        async def disk_full(jobs: object) -> object:
            raise sqlite3.OperationalError("database or disk is full")

        store._commit = disk_full  # type: ignore[method-assign,assignment]
        with pytest.raises(sqlite3.OperationalError):
            await asyncio.wait_for(store.push(await examine_batch(None, recs[2:], None), 2), 10)
        store._commit = real  # type: ignore[method-assign]
        result = await store.push(await examine_batch(None, recs[2:], None), 3)
        assert result.plan.counts()["accept"] == 2
        assert store.head_of(laptop.public).seq == 4 and store.records_stored == 4
    finally:
        await store.close()


async def test_unrecoverable_store_refuses_pushes_instead_of_hanging(tmp_path: Path) -> None:
    store = await HubStore.open(tmp_path)
    laptop = Identity.generate()
    recs = [r.raw for r in chain(laptop, forms(2))]

    async def broken(*_a: object) -> object:
        raise sqlite3.OperationalError("disk I/O error")

    store._commit = broken  # type: ignore[method-assign,assignment]
    store._load = broken  # type: ignore[method-assign,assignment]
    with pytest.raises(sqlite3.OperationalError):
        await asyncio.wait_for(store.push(await examine_batch(None, recs, None), 1), 10)
    with pytest.raises(StoreUnavailable, match="restarted"):
        await asyncio.wait_for(store.push(await examine_batch(None, recs, None), 2), 10)
    await store.close()


async def test_stored_records_cannot_be_changed_or_deleted(tmp_path: Path) -> None:
    store = await HubStore.open(tmp_path)
    laptop = Identity.generate()
    await store.push(await examine_batch(None, [r.raw for r in chain(laptop, forms(2))], None), 1)
    await store.close()
    db = sqlite3.connect(tmp_path / "hub.db")
    for sql in ("UPDATE records SET raw = x'00'", "DELETE FROM records"):
        with pytest.raises(sqlite3.IntegrityError, match="immutable"):
            db.execute(sql)
    db.close()
