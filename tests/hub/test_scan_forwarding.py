"""The forwarder's side of scans over a real store and a real blob folder: which scans it
offers upstream, and what a scan arriving at the hub costs it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from hub.config import HubConfig
from hub.forwarder import Forwarder
from hub.storage import HeldBlob
from hub.store import HubStore
from tests.helpers import chain, forms

from .conftest import HUB_KEY, MakeClient
from .fakes import FakeRoot, FakeUpstream
from .test_blobs import LAPTOP, ScanHub, page, sha
from .test_scan_status import open_hub


async def one_scan_each(
    tmp_path: Path, aiohttp_client: MakeClient, n: int, seed: int
) -> tuple[list[bytes], list[Any], tuple[ScanHub, HubStore, Forwarder]]:
    """``n`` forms of the test laptop naming one page each (not pushed), and a hub with its
    forwarder to a fake root."""
    pages = [page(i, 1000 + seed * n + i) for i in range(n)]
    bodies = forms(n, seed=seed)
    for b, p in zip(bodies, pages, strict=True):
        b["scans"] = [sha(p)]
    h, store, _probe = await open_hub(tmp_path, aiohttp_client)
    fwd = Forwarder(store, FakeUpstream(FakeRoot()), HUB_KEY, "Test Hub", scans=h.scans)
    return pages, chain(LAPTOP, bodies), (h, store, fwd)


async def test_a_scan_arriving_costs_the_forwarder_that_scan_not_all_it_waits_for(
    tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    """200 entries upstream holds, each naming a scan not here yet: the forwarder waits for
    all 200. Each scan that arrives is then offered upstream at the cost of looking up that
    scan, not the 199 others still awaited."""
    n = 200
    pages, recs, (h, store, fwd) = await one_scan_each(tmp_path, aiohttp_client, n, 11)
    book = store.scan_book
    asked: list[int] = []
    lookup = book.lookup

    async def counted(hashes: Sequence[str]) -> dict[str, HeldBlob | None]:
        asked.append(len(hashes))
        return await lookup(hashes)

    book.lookup = counted  # type: ignore[method-assign]
    try:
        await h.enrolled(LAPTOP, approve=True)
        status, _ = await h.push([r.raw for r in recs])
        assert status == 200
        dev = await store.device(LAPTOP.public)
        assert dev is not None
        await store.confirm(dev.id, n, recs[-1].hash, b"receipt", 1)  # upstream holds them all
        assert await fwd._blob_steps() == []  # nothing held here yet: nothing to send
        assert sum(asked) == n  # the newly confirmed scans, looked up once
        for i, p in enumerate(pages[:50]):
            await h.upload(p)
            asked.clear()
            steps = await fwd._blob_steps()
            assert sum(asked) <= 1, (i, asked)  # that scan, not the others awaited
            assert steps, i  # and it goes upstream
        offered = {d for lane in fwd.lanes for d in lane.sizes}
        assert offered == {sha(p) for p in pages[:50]}
        asked.clear()
        assert await fwd._blob_steps()
        assert sum(asked) == 0  # nothing arrived: nothing looked up
    finally:
        await h.http.close()
        h.scans.close()
        await store.close()


async def test_scans_nobody_waits_for_are_not_remembered_while_upstream_is_away(
    tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    """Scans arriving while the forwarder takes none (upstream down for hours, entries first)
    are remembered for it only when it waits for them: the list stays bounded by what it
    awaits, not by every scan the room uploads meanwhile."""
    n = 60
    pages, recs, (h, store, fwd) = await one_scan_each(tmp_path, aiohttp_client, n, 12)
    try:
        await h.enrolled(LAPTOP, approve=True)
        status, _ = await h.push([r.raw for r in recs])
        assert status == 200
        for p in pages:  # upstream confirmed none of them: the forwarder awaits none
            await h.upload(p)
        assert h.scans.take_arrivals() == []
        dev = await store.device(LAPTOP.public)
        assert dev is not None
        await store.confirm(dev.id, n, recs[-1].hash, b"receipt", 1)
        assert len(await fwd._blob_steps()) > 0  # the held scans of confirmed entries go up
    finally:
        await h.http.close()
        h.scans.close()
        await store.close()


def test_scan_senders_upstream_are_two_by_default_as_set_and_one_under_a_cap() -> None:
    """Few connections to the national side by default (DESIGN principle 8): two scan
    senders without a cap, ``--upstream-lanes`` for more, and one under ``--upstream-kbps``
    whatever the setting; the setting is checked."""
    up = FakeUpstream(FakeRoot())
    assert len(Forwarder(None, up, HUB_KEY, "Hub").lanes) == 2  # type: ignore[arg-type]
    assert len(Forwarder(None, up, HUB_KEY, "Hub", lanes=8).lanes) == 8  # type: ignore[arg-type]
    capped = Forwarder(None, up, HUB_KEY, "Hub", kbps=250, lanes=8)  # type: ignore[arg-type]
    assert len(capped.lanes) == 1
    assert HubConfig(data_dir=Path("."), upstream_lanes=16).upstream_lanes == 16
    for bad in (0, 17):
        with pytest.raises(ValueError, match=r"upstream_lanes must be 1\.\.16"):
            HubConfig(data_dir=Path("."), upstream_lanes=bad)


class GatedScanRoot(FakeUpstream):
    """The fake root taking scans too: every scan lacking, each chunk stored at once, except
    the chunks of ``held_back``, which wait for ``release``."""

    def __init__(self, root: FakeRoot, held_back: str):
        super().__init__(root)
        self.held_back = held_back
        self.release = asyncio.Event()
        self.stored: list[str] = []

    async def blobs_lacking(self, hashes: Sequence[str]) -> Any:
        await asyncio.sleep(0)
        return {"blobs": [[h, "lacking", 0] for h in hashes]}

    async def blob_put(self, digest: str, offset: int, data: bytes, total: int) -> Any:
        if digest == self.held_back:
            await self.release.wait()
        self.stored.append(digest)
        return {"offset": total, "stored": 1}


async def test_a_slow_scan_upstream_holds_up_only_its_own_sender(
    tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    """Each scan sender upstream goes on by itself: while one chunk waits at upstream (a slow
    fsync there), the other sender sends its scans one after another, and an entry stored
    meanwhile goes up at once. Before, the senders went in rounds, and every round waited
    for its slowest chunk."""
    pages, recs, (h, store, _) = await one_scan_each(tmp_path, aiohttp_client, 5, 13)
    late = chain(LAPTOP, forms(1, seed=99), start=6, prev=recs[-1].hash)
    root = FakeRoot()
    up = GatedScanRoot(root, held_back=sha(pages[0]))
    fwd = Forwarder(store, up, HUB_KEY, "Test Hub", scans=h.scans, lanes=2)
    try:
        await h.enrolled(LAPTOP, approve=True)
        status, _ = await h.push([r.raw for r in recs])
        assert status == 200
        for p in pages:
            await h.upload(p)
        await fwd.start()
        for _ in range(3000):  # until the scans are dealt to the two senders
            if sum(len(lane.sizes) for lane in fwd.lanes) == len(pages):
                break
            await asyncio.sleep(0.01)
        (other,) = [lane for lane in fwd.lanes if sha(pages[0]) not in lane.sizes]
        others = set(other.sizes)
        assert len(others) >= 2
        for _ in range(3000):  # a bounded wait: before, the others waited behind pages[0]
            if others <= set(up.stored):
                break
            await asyncio.sleep(0.01)
        assert set(up.stored) == others, up.stored  # the other sender's, one after another
        # an entry stored now goes up while the slow chunk is still in flight (before, the
        # loop waited for that chunk, up to a call's timeout, before it looked again)
        head = root.head(LAPTOP.public)
        status, _ = await h.push([r.raw for r in late])
        assert status == 200
        for _ in range(3000):
            if root.head(LAPTOP.public) > head:
                break
            await asyncio.sleep(0.01)
        assert root.head(LAPTOP.public) == head + 1
        assert sha(pages[0]) not in up.stored and len(fwd._sending) == 1  # still in flight
        up.release.set()
        for _ in range(3000):
            if len(up.stored) == len(pages):
                break
            await asyncio.sleep(0.01)
        assert sorted(up.stored) == sorted(sha(p) for p in pages)
    finally:
        up.release.set()
        await fwd.stop()
        await h.http.close()
        h.scans.close()
        await store.close()
