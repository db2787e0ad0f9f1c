"""Scans laptop -> hub -> root with real in-process hubs on 127.0.0.1, real SQLite and real
blob folders on every side: entries first, then scans; what each side says about them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import aiohttp

from client import scanstate
from client.db import write
from client.scans import blob_store
from client.store import ClientStore
from client.sync import sync_once
from hub.protocol import entry
from tests.helpers import ENTERED_AT, forms
from tests.shared.images import jpeg

from .test_sync import eventually, make_hub


def page(i: int, size: int = 3000) -> bytes:
    return jpeg(i.to_bytes(4, "big") * (size // 4))


async def laptop_with_scans(tmp: Path, name: str, n: int, pages: int = 2) -> ClientStore:
    store, _ = await ClientStore.create(tmp / name, name, now=ENTERED_AT)
    blobs = blob_store(tmp / name)
    bodies = []
    for i, f in enumerate(forms(n, seed=5)):
        f["scans"] = [blobs.put_chunks([page(i * 10 + p)]).hash for p in range(pages)]
        bodies.append(entry.encode_body(entry.parse(f), ENTERED_AT))
    await store.append(bodies)
    return store


async def test_scans_follow_entries_to_the_hub_and_on_to_the_root(tmp_path: Path) -> None:
    async with make_hub(tmp_path, "root", root=True, approve_all=True) as root:
        assert root.url is not None
        hub_ = make_hub(tmp_path, "hub", upstream=root.url, approve_all=True)
        async with hub_ as hub, aiohttp.ClientSession() as http:
            store = await laptop_with_scans(tmp_path, "l1", 5)
            try:
                sc = await scanstate.summary(store.db, blob_store(tmp_path / "l1"))
                assert (sc.local, sc.at_hub, sc.bytes_pending) == (10, 0, 10 * len(page(0)))
                # the station's per-entry state of its scans (lengkap / menunggu)
                names = [hashlib.sha256(page(p)).hexdigest() for p in range(2)]
                where = await scanstate.states_of(store.db)
                assert scanstate.entry_state(names, where) == scanstate.WAITING
                assert scanstate.entry_state([], where) is None
                rep = await sync_once(store, http, hub_url=hub.url, batch=2)
                where = await scanstate.states_of(store.db)
                assert scanstate.entry_state(names, where) == scanstate.COMPLETE
                assert rep.at_hub == 5 and rep.scans.sent == 10 and rep.scans.error is None
                assert rep.scans.bytes == 10 * len(page(0)) and rep.scans.resent_bytes == 0
                hub_scans = hub.service.scans
                assert hub_scans is not None and len(hub_scans.held) == 10
                for i in range(5):
                    for p in range(2):
                        data = page(i * 10 + p)
                        digest = hashlib.sha256(data).hexdigest()
                        assert hub_scans.blobs.path(digest).read_bytes() == data
                sc = await scanstate.summary(store.db, blob_store(tmp_path / "l1"))
                assert (sc.local, sc.at_hub + sc.confirmed_upstream, sc.bytes_pending) == (0, 10, 0)

                root_scans = root.service.scans
                assert root_scans is not None
                await eventually(lambda: len(root_scans.held) == 10)
                for digest, size in hub_scans.held.items():
                    assert root_scans.blobs.path(digest).read_bytes() == (
                        hub_scans.blobs.path(digest).read_bytes()
                    )
                    assert root_scans.held[digest] == size
                await eventually(lambda: hub_scans.status(0)[0]["pending_upstream"] == 0)
                st = await hub.service.status(max_age=0)
                assert st["scans"]["expected"] == 10 and st["scans"]["held"] == 10
                assert st["scans"]["missing"] == 0 and st["scans"]["pending_upstream"] == 0
                rst = await root.service.status(max_age=0)
                assert rst["scans"]["held"] == 10 and rst["scans"]["pending_upstream"] == 0

                again = await sync_once(store, http, hub_url=hub.url)
                assert again.scans.sent == 0 and again.scans.bytes == 0
                sc = await scanstate.summary(store.db, blob_store(tmp_path / "l1"))
                assert sc.confirmed_upstream == 10  # the hub said so
            finally:
                await store.close()


async def test_a_scan_missing_on_the_laptop_stays_scan_pending_at_the_hub(
    tmp_path: Path,
) -> None:
    async with make_hub(tmp_path, "hub", approve_all=True) as hub:
        store = await laptop_with_scans(tmp_path, "l1", 2, pages=1)
        gone = hashlib.sha256(page(10)).hexdigest()
        blob_store(tmp_path / "l1").path(gone).unlink()
        try:
            async with aiohttp.ClientSession() as http:
                rep = await sync_once(store, http, hub_url=hub.url)
            assert rep.scans.sent == 1
            st = await hub.service.status(max_age=0)
            assert st["scans"] == {"expected": 2, "held": 1, "missing": 1, "pending_upstream": 1,
                                   "bytes_pending": len(page(0)), "eta_s": None,
                                   "entries_pending": 1}  # fmt: skip
            pending = [e for e in st["scan_pending"]]
            assert len(pending) == 1 and pending[0]["missing"] == [gone]
        finally:
            await store.close()


async def test_the_hub_refuses_scans_of_entries_it_does_not_hold(tmp_path: Path) -> None:
    async with make_hub(tmp_path, "hub") as hub, aiohttp.ClientSession() as http:
        data = page(1)
        digest = hashlib.sha256(data).hexdigest()
        rng = f"bytes 0-{len(data) - 1}/{len(data)}"
        headers = {"Content-Range": rng, "Accept": "application/json"}
        async with http.put(f"{hub.url}/v1/blobs/{digest}", data=data, headers=headers) as r:
            assert r.status == 409
            assert (await r.json())["error"]["code"] == "not_named"


async def test_entries_older_than_the_scans_table_are_indexed_once(tmp_path: Path) -> None:
    store = await laptop_with_scans(tmp_path, "l1", 3)
    blobs = blob_store(tmp_path / "l1")
    try:
        assert (await scanstate.summary(store.db, blobs)).local == 6
        async with write(store.db) as conn:  # as a store from before migration 3 looks
            await conn.execute("DELETE FROM scans")
            await conn.execute("DELETE FROM meta WHERE key = 'scans_seq'")
        assert (await scanstate.summary(store.db, blobs)).local == 0
        await store.append([entry.encode_body(entry.parse(forms(1, seed=9)[0]), ENTERED_AT)])
        await scanstate.index(store.db)
        assert (await scanstate.summary(store.db, blobs)).local == 6
        row = await store.db.fetchone("SELECT value FROM meta WHERE key = 'scans_seq'")
        assert row is not None and row[0] == "4"
    finally:
        await store.close()
