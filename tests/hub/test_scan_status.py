"""The hub's scan status over a real store and a real blob folder, through pushes, arrivals,
a correction that supersedes an entry, upstream taking pages and a restart: the figures
``GET /v1/status`` shows are at every step the ones computed from scratch (every entry held,
every blob file on disk), and no step makes the hub walk the entries it already had."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from hub.protocol import blobsync as bs
from hub.scans import HubScans
from hub.server import make_app
from hub.service import HubService
from hub.store import HubStore
from tests.helpers import chain, forms

from .conftest import HUB_KEY, TOKEN, MakeClient
from .test_blobs import LAPTOP, ScanHub, page, sha


class Counted(Sequence[Any]):
    """The store's facts, counting every fact read through it."""

    def __init__(self, inner: Sequence[Any]):
        self.inner = inner
        self.read = 0

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: Any) -> Any:
        got = self.inner[i]
        self.read += len(got) if isinstance(i, slice) else 1
        return got

    def __iter__(self) -> Iterator[Any]:
        for f in self.inner:
            self.read += 1
            yield f


class Probe:
    """The store as the scans see it (its facts and its scan book), counting the facts the
    scans' tally reads."""

    def __init__(self, store: HubStore):
        self.store = store
        self.scan_book = store.scan_book
        self._view: Counted | None = None

    @property
    def facts(self) -> Sequence[Any]:
        inner = self.store.facts
        if self._view is None or self._view.inner is not inner:
            self._view = Counted(inner)
        return self._view

    def take(self) -> int:
        n = self._view.read if self._view is not None else 0
        if self._view is not None:
            self._view.read = 0
        return n


async def open_hub(folder: Path, aiohttp_client: MakeClient) -> tuple[ScanHub, HubStore, Probe]:
    store = await HubStore.open(folder)
    probe = Probe(store)
    book = store.scan_book
    if hasattr(book, "tally"):  # the book feeds the one tally: it reads the facts too
        book.store = probe
    scans = HubScans(folder, probe, root=False)
    await scans.load()
    service = HubService(store, HUB_KEY, name="Test Hub", scans=scans)
    h = ScanHub(
        service, await aiohttp_client(make_app(service, admin_token=TOKEN, max_body=4 << 20))
    )
    h.scans = scans
    return h, store, probe


def from_scratch(store: HubStore, folder: Path, upstream: set[str]) -> dict[str, Any]:
    """The figures recomputed from every entry held and every blob file in the folder."""
    entries = [(f.facts.key, f.facts.scans) for f in store.facts]
    named = dict.fromkeys(h for _, scans in entries for h in scans)
    held = {p.name: p.stat().st_size for p in (folder / "blobs").glob("??/*")}
    out: dict[str, Any] = bs.scan_counts(named, held, upstream).to_dict()
    pending = bs.scan_pending(entries, held)
    out["entries_pending"] = len(pending)
    out["listed"] = [[*k, m] for k, m in pending[:100]]
    return out


async def shown(h: ScanHub) -> dict[str, Any]:
    async with h.http.get("/v1/status") as r:
        assert r.status == 200
        st = await r.json()
    out = {k: v for k, v in st["scans"].items() if k != "eta_s"}
    out["listed"] = [[e["election"], e["form"], e["tps"], e["missing"]]
                     for e in st["scan_pending"]]  # fmt: skip
    return out


async def test_status_figures_stay_right_and_each_change_costs_only_itself(
    tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    pages = [page(i, 2000 + i) for i in range(241)]
    bodies = forms(120, seed=5)
    for i, b in enumerate(bodies):  # 2 pages each, some none
        b["scans"] = [] if i % 10 == 9 else [sha(pages[2 * i]), sha(pages[2 * i + 1])]
    named = [p for i, p in enumerate(pages[:240]) if (i // 2) % 10 != 9]
    recs = chain(LAPTOP, bodies)

    h, store, probe = await open_hub(tmp_path, aiohttp_client)
    upstream: set[str] = set()
    try:
        await h.enrolled(LAPTOP, approve=True)
        # pushes
        for lo, hi in ((0, 60), (60, 119)):
            status, reply = await h.push([r.raw for r in recs[lo:hi]])
            assert status == 200 and reply["accepted"] == hi - lo
            assert await shown(h) == from_scratch(store, tmp_path, upstream)
        probe.take()
        # arrivals: each costs no entry read
        for p in named[:40] + named[100:125]:
            await h.upload(p)
            assert await shown(h) == from_scratch(store, tmp_path, upstream)
            assert probe.take() == 0
        # one more entry: read once, itself
        status, _ = await h.push([recs[119].raw])
        assert status == 200
        assert await shown(h) == from_scratch(store, tmp_path, upstream)
        assert probe.take() == 1
        # a correction superseding entry #1 (seq 2): the same pages and one new
        fix = dict(bodies[1], supersedes=recs[1].hash.hex(),
                   scans=[*bodies[1]["scans"], sha(pages[240])])  # fmt: skip
        [corr] = chain(LAPTOP, [fix], start=121, prev=recs[119].hash)
        status, reply = await h.push([corr.raw])
        assert status == 200 and reply["accepted"] == 1, reply
        assert await shown(h) == from_scratch(store, tmp_path, upstream)
        assert probe.take() == 1
        assert [f.facts.key for f in store.facts][-1] == [f.facts.key for f in store.facts][1]
        await h.upload(pages[240])  # (its other pages are here already)
        # upstream takes pages (as the forwarder learns from upstream's answers)
        for p in named[:30:3]:
            h.scans.upstream_holds(sha(p))
            upstream.add(sha(p))
        want = from_scratch(store, tmp_path, upstream)
        assert await shown(h) == want
        assert probe.take() == 0
        assert want["expected"] == len(named) + 1 and want["held"] == 40 + 25 + 1
        assert want["entries_pending"] > 0 and want["pending_upstream"] == want["held"] - 10
    finally:
        await h.http.close()
        h.scans.close()
        await store.close()

    # restart: what upstream holds is memory only (asked again); the rest is the same
    h, store, probe = await open_hub(tmp_path, aiohttp_client)
    try:
        assert await shown(h) == from_scratch(store, tmp_path, set())
        probe.take()
        for p in named[40:100]:
            await h.upload(p)
        assert await shown(h) == from_scratch(store, tmp_path, set())
        assert probe.take() == 0
    finally:
        await h.http.close()
        h.scans.close()
        await store.close()


def keyed_by(roots: list[Any], key: str) -> list[str]:
    """The dicts and sets reachable from ``roots`` through hub objects and containers that
    have ``key`` as a key: each is one more copy of what that hash indexes."""
    seen: set[int] = set()
    todo = list(roots)
    found: list[str] = []
    while todo:
        o = todo.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        if isinstance(o, (dict, set, frozenset)):
            if key in o:
                found.append(f"{type(o).__name__} of {len(o)}")
        elif not isinstance(o, (list, tuple)) and not type(o).__module__.startswith("hub."):
            continue  # outside the hub's own objects (the loop, sockets, SQLite)
        todo.extend(gc.get_referents(o))
    return found


async def test_a_named_and_held_scan_is_indexed_once(
    tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    """The store's scan book and the scans' status figures share one index of the hashes the
    entries name and one map of the blobs held (one copy, one owner: the book's tally)."""
    pages = [page(i, 3000) for i in range(4)]
    bodies = forms(2, seed=7)
    bodies[0]["scans"], bodies[1]["scans"] = [sha(pages[0]), sha(pages[1])], [sha(pages[2])]
    h, store, _probe = await open_hub(tmp_path, aiohttp_client)
    try:
        await h.enrolled(LAPTOP, approve=True)
        status, _ = await h.push([r.raw for r in chain(LAPTOP, bodies)])
        assert status == 200
        await h.upload(pages[0])
        assert (await shown(h))["held"] == 1
        # held: named once (the index) and held once (the held map); not held: named once
        # and waited for once (the entries lacking it)
        assert len(keyed_by([h.scans, store], sha(pages[0]))) == 2, keyed_by(
            [h.scans, store], sha(pages[0])
        )
        assert len(keyed_by([h.scans, store], sha(pages[2]))) == 2, keyed_by(
            [h.scans, store], sha(pages[2])
        )
    finally:
        await h.http.close()
        h.scans.close()
        await store.close()


async def test_the_sqlite_book_has_no_figures_that_walk_the_entries(tmp_path: Path) -> None:
    """On SQLite the status figures are the tally's, kept event by event: the book has no
    second way to count them (one that walked every entry held)."""
    store = await HubStore.open(tmp_path)
    try:
        book = store.scan_book
        assert not hasattr(book, "summary") and not hasattr(book, "summary_now")
    finally:
        await store.close()


async def test_a_status_reads_the_scan_figures_once(
    tmp_path: Path, aiohttp_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``GET /v1/status`` (and the service's status) read the SQLite hub's scan figures
    once, not once to "summarize" and again to show them."""
    reads = [0]
    counts = bs.ScanTally.counts

    def counted(t: bs.ScanTally) -> bs.ScanCounts:
        reads[0] += 1
        return counts(t)

    monkeypatch.setattr(bs.ScanTally, "counts", counted)
    h, store, _probe = await open_hub(tmp_path, aiohttp_client)
    try:
        await h.enrolled(LAPTOP, approve=True)
        bodies = forms(3, seed=9)
        for i, b in enumerate(bodies):
            b["scans"] = [sha(page(i))]
        status, _ = await h.push([r.raw for r in chain(LAPTOP, bodies)])
        assert status == 200
        await h.upload(page(0))
        for _ in range(3):
            reads[0] = 0
            s = await h.service.status(max_age=0)
            assert s["scans"]["held"] == 1 and s["scans"]["missing"] == 2
            assert reads[0] == 1
        reads[0] = 0
        assert (await shown(h))["held"] == 1
        assert reads[0] == 1
    finally:
        await h.http.close()
        h.scans.close()
        await store.close()
