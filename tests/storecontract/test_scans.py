"""The scan book's contract (``hub.storage.ScanBook``), on every backend of conftest.py: a
hash is named once an entry naming it is stored, a blob is held once the book is told, and a
second store on the same data (a second receiver on the same PostgreSQL database) sees it.
The figures are the PostgreSQL book's ``summary`` (its database counters) and the SQLite
book's tally (``blobsync.ScanTally``, what its status shows): the same for the same events."""

from __future__ import annotations

import hashlib
from typing import Any, cast

from hub.scanbook import SqliteScanBook
from hub.storage import CountedScanBook, HeldBlob, HubStorage, ScanBook, ScanSummary
from tests.pg.helpers import check, forms, ident, sign
from tests.storecontract.conftest import Opener
from tests.storecontract.test_contract import approved


def h(n: int) -> str:
    return hashlib.sha256(b"page %d" % n).hexdigest()


def with_scans(bodies: list[dict[str, Any]], pages: list[list[int]]) -> list[dict[str, Any]]:
    for b, ps in zip(bodies, pages, strict=True):
        b["scans"] = [h(p) for p in ps]
    return bodies


async def summary(book: ScanBook, upstream: dict[str, int] | None, limit: int) -> ScanSummary:
    """The figures of the status: the PostgreSQL book's ``summary``; the SQLite book's tally,
    told what upstream holds as the forwarder would tell it (``upstream`` only grows here)."""
    if isinstance(book, SqliteScanBook):
        t = book.refresh()
        t.root = upstream is None
        for digest in upstream or ():
            t.upstream_holds(digest)
        return ScanSummary(t.counts(), t.entries_pending, t.pending(limit))
    return await cast(CountedScanBook, book).summary(upstream, limit)


async def test_a_hash_is_named_only_by_an_entry_held(store: HubStorage) -> None:
    book = store.scan_book
    assert await book.lookup([h(1), h(2)]) == {}
    who = ident(21)
    await store.enroll(who.public, "L", "laptop", 1)  # pending: its entries are held, not counted
    await store.push(check(sign(who, with_scans(forms(2, seed=21), [[1, 2], [3]]))), 3)
    assert await book.lookup([h(1), h(2), h(3), h(4)]) == {h(1): None, h(2): None, h(3): None}
    assert await book.held(h(1)) is None


async def test_a_blob_is_held_once_and_for_every_store_on_the_data(
    store: HubStorage, open_store: Opener
) -> None:
    who = ident(22)
    await approved(store, who)
    bodies = with_scans(forms(4, seed=22), [[1, 2], [2], [1], [5, 5]])
    raws = sign(who, bodies)
    await store.push(check(raws[:2]), 3)
    book = store.scan_book
    assert await book.add_held(h(1), 1234, "jpeg", 5) is True
    assert await book.add_held(h(1), 1234, "jpeg", 6) is False  # already held
    assert await book.held(h(1)) == HeldBlob(1234, "jpeg")
    assert await book.lookup([h(1), h(2)]) == {h(1): HeldBlob(1234, "jpeg"), h(2): None}
    s = await summary(book, None, 10)
    assert s.counts.to_dict() == {
        "expected": 2, "held": 1, "missing": 1, "pending_upstream": 0, "bytes_pending": 0,
    }  # fmt: skip
    assert s.entries_pending == 2  # both entries name h(2)
    assert sorted((k[2], m) for k, m in s.listed) == sorted((b["tps"], [h(2)]) for b in bodies[:2])
    # an entry naming only a held scan waits for nothing; one naming a scan twice, for one
    await store.push(check(raws[2:]), 4)
    s = await summary(book, None, 10)
    assert (s.counts.expected, s.counts.held, s.entries_pending) == (3, 1, 3)
    assert await book.add_held(h(5), 10, "png", 6) is True
    s = await summary(book, None, 10)
    assert (s.counts.expected, s.counts.held, s.entries_pending) == (3, 2, 2)
    up = await summary(book, {}, 10)  # a hub with an upstream that holds none of them yet
    assert (up.counts.pending_upstream, up.counts.bytes_pending) == (2, 1244)
    up = await summary(book, {h(1): 1234}, 10)
    assert (up.counts.pending_upstream, up.counts.bytes_pending) == (1, 10)

    if hasattr(store, "pool"):  # PostgreSQL: a second receiver, at the same time
        other = await open_store()
    else:  # SQLite: one process owns hub.db; the same folder opened again
        await store.close()
        other = await open_store()
    assert await other.scan_book.held(h(1)) == HeldBlob(1234, "jpeg")
    assert await other.scan_book.add_held(h(1), 1234, "jpeg", 7) is False
    assert await other.scan_book.add_held(h(2), 99, "png", 7) is True
    s = await summary(other.scan_book, None, 10)
    assert (s.counts.held, s.counts.missing, s.entries_pending, s.listed) == (3, 0, 0, [])


async def test_the_forwarder_gets_each_confirmed_entrys_scans_once(store: HubStorage) -> None:
    who = ident(23)
    await approved(store, who)
    pages = [[1, 2], [], [3], [1]]
    await store.push(check(sign(who, with_scans(forms(4, seed=23), pages))), 3)
    dev = await store.device(who.public)
    assert dev is not None
    book = store.scan_book
    assert await book.newly_confirmed({}) == []
    assert set(await book.newly_confirmed({dev.id: 1})) == {h(1), h(2)}
    assert await book.newly_confirmed({dev.id: 1}) == []
    assert await book.newly_confirmed({dev.id: 4}) == [h(3), h(1)]
    assert await book.newly_confirmed({dev.id: 4}) == []
