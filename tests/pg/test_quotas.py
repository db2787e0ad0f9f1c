"""The quotas across several receivers on one PostgreSQL: two stores (two pools, as two
receiver processes have) admitting devices and holding records at the same moment never pass
a limit, because every transaction that may add to the usage locks ``quota_lock`` first
(hub/pg/store.py). The single-store decisions are in tests/storecontract/test_quotas.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from hub.pg.schema import MIGRATIONS
from hub.pg.store import PgStore
from hub.protocol.quota import QuotaError, Quotas
from tests.pg.helpers import check, forms, ident, sign


@pytest.fixture
async def two(pg_dsn: str, request: pytest.FixtureRequest) -> AsyncIterator[list[PgStore]]:
    quotas: Quotas = request.param
    stores = [await PgStore.open(pg_dsn, quotas=quotas, max_size=6) for _ in range(2)]
    try:
        yield stores
    finally:
        for s in stores:
            await s.close()


@pytest.mark.parametrize("two", [Quotas(pending_devices=3)], indirect=True)
async def test_new_keys_pushed_through_two_receivers_stop_at_the_pending_quota(
    two: list[PgStore],
) -> None:
    keys = [ident(900 + i) for i in range(10)]
    logs = [sign(k, forms(2, seed=900 + i)) for i, k in enumerate(keys)]
    results = await asyncio.gather(
        *(two[i % 2].push(check(raws), 1) for i, raws in enumerate(logs))
    )
    kept = [r for r in results if r.plan.counts()["accept"]]
    assert len(kept) == 3 and all(r.plan.counts()["accept"] == 2 for r in kept)
    refused = [o for r in results for o in r.plan.outcomes if o.code == "quota"]
    assert len(refused) == 14 and all("max_pending_devices" in str(o.reason) for o in refused)
    c = await two[0].counters()
    assert c.devices == {"pending": 3} and c.records_stored == 6 and c.held_records == 6
    made = [k.public for k in keys if await two[1].device(k.public) is not None]
    assert sorted(o for r in kept for o in r.new_devices) == sorted(made)


@pytest.mark.parametrize("two", [Quotas(pending_devices=2)], indirect=True)
async def test_enrollments_through_two_receivers_stop_at_the_pending_quota(
    two: list[PgStore],
) -> None:
    keys = [ident(950 + i) for i in range(8)]
    done = await asyncio.gather(
        *(two[i % 2].enroll(k.public, f"L{i}", "laptop", 1) for i, k in enumerate(keys)),
        return_exceptions=True,
    )
    assert sum(not isinstance(d, BaseException) for d in done) == 2
    assert all(isinstance(d, QuotaError) for d in done if isinstance(d, BaseException))
    assert (await two[1].counters()).devices == {"pending": 2}


@pytest.mark.parametrize(
    "two", [Quotas(held_records=10, held_records_per_device=100)], indirect=True
)
async def test_held_records_pushed_through_two_receivers_stop_at_the_total(
    two: list[PgStore],
) -> None:
    keys = [ident(980 + i) for i in range(4)]
    for k in keys:
        await two[0].enroll(k.public, "P", "laptop", 1)
    logs = [sign(k, forms(5, seed=980 + i)) for i, k in enumerate(keys)]
    results = await asyncio.gather(
        *(two[i % 2].push(check(raws), 2) for i, raws in enumerate(logs))
    )
    assert sum(r.plan.counts()["accept"] for r in results) == 10
    c = await two[1].counters()
    assert c.records_stored == 10 and c.held_records == 10
    stored = [raws[: r.plan.counts()["accept"]] for r, raws in zip(results, logs, strict=True)]
    assert c.held_bytes == sum(len(raw) for raws in stored for raw in raws)


async def test_migration_4_counts_what_devices_never_approved_already_hold(pg_dsn: str) -> None:
    con = await asyncpg.connect(pg_dsn)
    try:  # a database at schema version 3, with records from a pending and an approved device
        await con.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for n in range(3):
            await con.execute(MIGRATIONS[n])
            await con.execute("INSERT INTO schema_migrations(version) VALUES ($1)", n + 1)
        await con.execute(
            "INSERT INTO devices(public, node_id, first_seen, last_seen, approved_at, state,"
            " records) VALUES ($1, 'P', 1, 1, NULL, 'pending', 2), ($2, 'A', 1, 1, 1,"
            " 'approved', 1)",
            ident(990).public, ident(991).public,
        )  # fmt: skip
        await con.execute(
            "INSERT INTO records(dev, seq, hash, raw, received_at, election, form, tps, flags,"
            " users_j, numbers) SELECT d, s, '\\x00', r, 1, 'e', 'PPWP', 't', '', 0, ''"
            " FROM (VALUES (1, 1, '\\x0102'::bytea), (1, 2, '\\x030405'), (2, 1, '\\x06'))"
            " v(d, s, r)"
        )
    finally:
        await con.close()
    store = await PgStore.open(pg_dsn, quotas=Quotas(held_records=3))
    try:
        c = await store.counters()
        assert (c.held_records, c.held_bytes) == (2, 5)
        r = await store.push(check(sign(ident(992), forms(3, seed=992))), 2)
        assert [o.code for o in r.plan.outcomes] == [None, "quota", "quota"]
    finally:
        await store.close()
