"""The forwarder's scan cursor of a hub on PostgreSQL (``hub.pg.scans``) survives a restart:
a restarted book hands out again only the entries whose scans upstream was not known to hold,
instead of walking every entry's scans from the first one; nothing in flight is lost."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from hub.pg.store import PgStore
from hub.scans import HubScans
from tests.pg.helpers import check, forms, ident, sign
from tests.storecontract.test_contract import approved
from tests.storecontract.test_scans import h, with_scans


async def restarted(dsn: str, data: Path, old: PgStore) -> tuple[PgStore, HubScans]:
    """A receiver process started again: a new store and a new ``HubScans`` (whose
    ``upstream`` starts empty, as after a restart)."""
    await old.close()
    store = await PgStore.open(dsn, max_size=2)
    return store, HubScans(data, store, root=False)


async def test_a_restarted_forwarder_starts_where_upstream_holds_the_scans(
    pg_dsn: str, tmp_path: Path
) -> None:
    store = await PgStore.open(pg_dsn, max_size=2)
    try:
        who = ident(41)
        await approved(store, who)
        pages = [[1, 2], [], [3], [1], [4], [5], [4]]
        raws = sign(who, with_scans(forms(7, seed=41), pages))
        await store.push(check(raws[:6]), 3)
        dev = await store.device(who.public)
        assert dev is not None
        scans = HubScans(tmp_path, store, root=False)
        book = store.scan_book

        assert await book.newly_confirmed({dev.id: 4}) == [h(1), h(2), h(3)]
        for n in (1, 2, 3):  # the forwarder learnt that upstream holds them
            scans.upstream_holds(h(n), 10)
        assert await book.newly_confirmed({dev.id: 5}) == [h(4)]  # sent, upstream silent yet

        # Restart: entries 1-4 are settled; entry 5 was in flight and comes again, then 6.
        # (Without a kept cursor the walk starts again at entry 1: h(1), h(2), h(3) ...)
        store, scans = await restarted(pg_dsn, tmp_path, store)
        book = store.scan_book
        assert await book.newly_confirmed({dev.id: 6}) == [h(4), h(5)]
        assert await book.newly_confirmed({dev.id: 6}) == []

        # Restart before upstream said anything: nothing is lost, the same two come again.
        store, scans = await restarted(pg_dsn, tmp_path, store)
        book = store.scan_book
        assert await book.newly_confirmed({dev.id: 6}) == [h(4), h(5)]
        scans.upstream_holds(h(4), 10)
        scans.upstream_holds(h(5), 10)
        # Entry 7 names a scan upstream is known to hold: handed out, and settled at once.
        await store.push(check(raws[6:]), 4)
        assert await book.newly_confirmed({dev.id: 7}) == [h(4)]
        assert await book.newly_confirmed({dev.id: 7}) == []  # saves the cursor at 7

        store, scans = await restarted(pg_dsn, tmp_path, store)
        assert await store.scan_book.newly_confirmed({dev.id: 7}) == []
        cursor = await store.db.fetchval("SELECT seq FROM scan_cursor WHERE dev = $1", dev.id)
        assert cursor == 7
    finally:
        await store.close()


async def test_a_scan_not_held_anywhere_holds_the_cursor_back_for_its_device_only(
    pg_dsn: str, tmp_path: Path
) -> None:
    store = await PgStore.open(pg_dsn, max_size=2)
    try:
        a, b = ident(42), ident(43)
        await approved(store, a, "A")
        await approved(store, b, "B")
        await store.push(check(sign(a, with_scans(forms(3, seed=42), [[11], [12], [13]]))), 3)
        await store.push(check(sign(b, with_scans(forms(2, seed=43), [[21], [22]]))), 3)
        da, db = await store.device(a.public), await store.device(b.public)
        assert da is not None and db is not None
        scans = HubScans(tmp_path, store, root=False)
        book = store.scan_book
        got = await book.newly_confirmed({da.id: 3, db.id: 2})
        assert sorted(got) == sorted([h(11), h(12), h(13), h(21), h(22)])
        for n in (11, 13, 21, 22):  # h(12) never reaches upstream (its laptop never sent it)
            scans.upstream_holds(h(n), 10)
        assert await book.newly_confirmed({da.id: 3, db.id: 2}) == []

        store, scans = await restarted(pg_dsn, tmp_path, store)
        assert await store.scan_book.newly_confirmed({da.id: 3, db.id: 2}) == [h(12), h(13)]
    finally:
        await store.close()


class Counted(Mapping[str, int]):
    """``HubScans.upstream`` as the book sees it, counting every hash looked up or walked."""

    def __init__(self, inner: Mapping[str, int]):
        self.inner = inner
        self.looks = 0

    def __getitem__(self, key: str) -> int:
        self.looks += 1
        return self.inner[key]

    def __contains__(self, key: object) -> bool:
        self.looks += 1
        return key in self.inner

    def __iter__(self) -> Iterator[str]:
        for k in self.inner:
            self.looks += 1
            yield k

    def __len__(self) -> int:
        return len(self.inner)


async def test_upstream_taking_a_scan_costs_the_book_that_scan_not_every_scan_waiting(
    pg_dsn: str, tmp_path: Path
) -> None:
    """Every handed-out scan waits for upstream (entries go before scans); upstream taking one
    costs the book a look at that one, not a walk of the whole backlog."""
    store = await PgStore.open(pg_dsn, max_size=2)
    try:
        n = 2000
        who = ident(44)
        await approved(store, who)
        raws = sign(who, with_scans(forms(n, seed=44), [[1000 + i] for i in range(n)]))
        for i in range(0, n, 500):
            await store.push(check(raws[i : i + 500]), 3)
        dev = await store.device(who.public)
        assert dev is not None
        scans = HubScans(tmp_path, store, root=False)
        book = store.scan_book
        up = Counted(scans.upstream)
        book.follow_upstream(up)
        assert len(await book.newly_confirmed({dev.id: n})) == n  # all wait for upstream

        async def cursor() -> int | None:
            return await store.db.fetchval("SELECT seq FROM scan_cursor WHERE dev = $1", dev.id)

        for k, expected in ((1, 1), (3, 1), (2, 3)):  # scans of entries 1, 3, then 2 taken
            up.looks = 0
            scans.upstream_holds(h(1000 + k - 1), 10)
            assert await book.newly_confirmed({dev.id: n}) == []
            assert up.looks <= 5, up.looks  # was one per scan waiting
            assert await cursor() == expected
    finally:
        await store.close()
