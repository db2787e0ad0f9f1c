"""The scan endpoints in-process over a real store and a real blob folder (docs/protocol.md
"Scans"): lacking, resumable upload, reading with ranges, and every refusal leaving nothing
half stored."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.blobstore import Blobs
from hub.protocol import codec
from hub.protocol.identity import Identity
from hub.render import status_text
from hub.scans import HubScans
from hub.server import make_app
from hub.service import HubService
from hub.store import HubStore
from tests.helpers import chain, forms
from tests.security.test_disk_full import fill, small_disk  # noqa: F401 - the fixture
from tests.shared.images import jpeg, png

from .conftest import HUB_KEY, TOKEN, MakeClient, Served

LAPTOP = Identity.from_seed(b"s" * 32)


class ScanHub(Served):
    scans: HubScans

    async def lacking(self, hashes: list[str]) -> tuple[int, Any]:
        return await self.post("/v1/blobs/lacking", codec.pack({"hashes": hashes}))

    async def put(
        self, digest: str, data: bytes, start: int, total: int, rng: str | None = None
    ) -> tuple[int, Any]:
        if rng is None:
            rng = f"bytes {start}-{start + len(data) - 1}/{total}"
        hdr = {"Content-Type": "application/octet-stream", "Content-Range": rng}
        async with self.http.put(f"/v1/blobs/{digest}", data=data, headers=hdr) as r:
            return r.status, codec.unpack(await r.read(), canonical=False)

    async def upload(self, data: bytes, chunk: int = 1000) -> Any:
        digest = hashlib.sha256(data).hexdigest()
        reply = None
        for off in range(0, len(data), chunk):
            status, reply = await self.put(digest, data[off : off + chunk], off, len(data))
            assert status == 200, reply
        return reply


async def scan_hub(
    folder: Path,
    store: HubStore,
    aiohttp_client: MakeClient,
    max_size: int = 0,
    blobs: Blobs | None = None,
) -> ScanHub:
    """The app of a hub service over ``store`` keeping its scans in ``folder`` (finished ones
    in ``blobs`` when given)."""
    scans = HubScans(folder, store, root=False, max_size=max_size, blobs=blobs)
    await scans.load()
    service = HubService(store, HUB_KEY, name="Test Hub", scans=scans)
    app = make_app(service, admin_token=TOKEN, max_body=4 << 20)
    h = ScanHub(service, await aiohttp_client(app))
    h.scans = scans
    return h


@pytest.fixture
async def shub(tmp_path: Path, aiohttp_client: MakeClient) -> AsyncIterator[ScanHub]:
    store = await HubStore.open(tmp_path)
    h = await scan_hub(tmp_path, store, aiohttp_client, max_size=100_000)
    yield h
    h.scans.close()
    await store.close()


def page(n: int, size: int = 5000) -> bytes:
    return jpeg(bytes([n % 256]) * size)


async def push_with_scans(h: ScanHub, pages: list[list[bytes]], seed: int = 3) -> None:
    bodies = forms(len(pages), seed=seed)
    for b, ps in zip(bodies, pages, strict=True):
        b["scans"] = [hashlib.sha256(p).hexdigest() for p in ps]
    await h.enrolled(LAPTOP, approve=True)
    status, reply = await h.push([r.raw for r in chain(LAPTOP, bodies)])
    assert status == 200 and reply["accepted"] == len(pages)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_lacking_names_only_scans_of_held_entries(shub: ScanHub) -> None:
    a, b = page(1), page(2)
    status, reply = await shub.lacking([sha(a)])
    assert status == 200 and reply == {"blobs": [[sha(a), "unknown", 0]]}
    await push_with_scans(shub, [[a, b]])
    _, reply = await shub.lacking([sha(a), sha(b), sha(page(3))])
    assert reply["blobs"] == [
        [sha(a), "lacking", 0], [sha(b), "lacking", 0], [sha(page(3)), "unknown", 0]
    ]  # fmt: skip


async def test_upload_in_chunks_exists_only_when_whole_and_reads_back(shub: ScanHub) -> None:
    data = page(1)
    await push_with_scans(shub, [[data]])
    digest = sha(data)
    status, reply = await shub.put(digest, data[:1000], 0, len(data))
    assert (status, reply) == (200, {"offset": 1000, "stored": 0})
    assert not shub.scans.blobs.has(digest)
    async with shub.http.get(f"/v1/blobs/{digest}") as r:
        assert r.status == 404
    _, reply = await shub.lacking([digest])
    assert reply["blobs"] == [[digest, "lacking", 1000]]  # resume from here
    status, reply = await shub.put(digest, data[1000:], 1000, len(data))
    assert (status, reply) == (200, {"offset": len(data), "stored": 1})
    assert shub.scans.blobs.path(digest).read_bytes() == data
    _, reply = await shub.lacking([digest])
    assert reply["blobs"] == [[digest, "held", 0]]

    async with shub.http.get(f"/v1/blobs/{digest}") as r:
        assert r.status == 200 and await r.read() == data
        assert r.headers["Content-Type"] == "image/jpeg"
        assert r.headers["ETag"] == f'"{digest}"'
    async with shub.http.get(f"/v1/blobs/{digest}", headers={"Range": "bytes=10-19"}) as r:
        assert r.status == 206 and await r.read() == data[10:20]
        assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    async with shub.http.get(f"/v1/blobs/{digest}", headers={"Range": "bytes=-5"}) as r:
        assert r.status == 206 and await r.read() == data[-5:]
    async with shub.http.get(f"/v1/blobs/{digest}", headers={"If-None-Match": f'"{digest}"'}) as r:
        assert r.status == 304
    async with shub.http.head(f"/v1/blobs/{digest}") as r:
        assert r.status == 200 and r.headers["Content-Length"] == str(len(data))
    async with shub.http.get(f"/v1/blobs/{digest}", headers={"Range": f"bytes={len(data)}-"}) as r:
        assert r.status == 416


async def test_a_chunk_not_at_the_offset_is_refused_and_nothing_changes(shub: ScanHub) -> None:
    data = page(1)
    await push_with_scans(shub, [[data]])
    digest = sha(data)
    await shub.put(digest, data[:1000], 0, len(data))
    for start in (0, 2000):
        status, reply = await shub.put(digest, data[start : start + 1000], start, len(data))
        assert status == 409 and reply["error"]["code"] == "offset_mismatch"
    assert shub.scans.blobs.upload_offset(digest) == 1000
    await shub.put(digest, data[1000:], 1000, len(data))
    status, reply = await shub.put(digest, data[:10], 0, len(data))  # held already
    assert status == 409 and reply["error"]["code"] == "offset_mismatch"


@pytest.mark.parametrize(
    ("make", "code", "http"),
    [
        (lambda: b"GIF89a" + b"x" * 2000, "not_an_image", 415),
        (lambda: page(1)[:-2], "incomplete", 422),  # a JPEG cut short: no end marker
        (lambda: page(1, 150_000), "blob_too_large", 413),
    ],
)
async def test_bad_blobs_are_refused_and_nothing_is_kept(
    shub: ScanHub, make: Any, code: str, http: int
) -> None:
    data = make()
    await push_with_scans(shub, [[data]])
    digest = sha(data)
    status, reply = await shub.put(digest, data[:100_000], 0, len(data))
    assert status == http and reply["error"]["code"] == code
    assert not shub.scans.blobs.has(digest)
    assert shub.scans.blobs.upload_offset(digest) == 0
    assert list(shub.scans.blobs.tmp.glob("*")) == []


async def test_bytes_that_do_not_hash_to_their_name_are_refused(shub: ScanHub) -> None:
    data, other = page(1), page(2)
    await push_with_scans(shub, [[data]])
    digest = sha(data)
    await shub.put(digest, other[:1000], 0, len(other))
    status, reply = await shub.put(digest, other[1000:], 1000, len(other))
    assert status == 422 and reply["error"]["code"] == "hash_mismatch"
    assert not shub.scans.blobs.has(digest) and shub.scans.blobs.upload_offset(digest) == 0
    _, reply = await shub.lacking([digest])
    assert reply["blobs"] == [[digest, "lacking", 0]]  # start again


async def test_a_scan_no_entry_names_is_refused(shub: ScanHub) -> None:
    data = png()
    status, reply = await shub.put(sha(data), data, 0, len(data))
    assert status == 409 and reply["error"]["code"] == "not_named"
    assert not shub.scans.blobs.has(sha(data)) and shub.scans.blobs.upload_offset(sha(data)) == 0


@pytest.mark.parametrize(
    "rng", ["", "bytes 0-9/5", "bytes 5-1/100", "items 0-9/100", "bytes 0-99/1000"]
)
async def test_bad_content_range_is_400(shub: ScanHub, rng: str) -> None:
    data = page(1)
    await push_with_scans(shub, [[data]])
    status, reply = await shub.put(sha(data), data[:10], 0, len(data), rng=rng)
    assert status == 400 and reply["error"]["code"] == "bad_range"


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_chunk_with_a_content_encoding_is_refused_unread(
    shub: ScanHub, encoding: str
) -> None:
    """A compressed chunk is refused before its body is read: the limits count the bytes on
    the wire, and 64 KB of gzip can decode to 64 MB. Before, the hub decoded the whole body
    into memory first (and answered "cut short")."""
    data = page(1, 200_000)
    await push_with_scans(shub, [[data]])
    body = gzip.compress(bytes(20_000_000))  # ~20 KB on the wire, 20 MB decoded
    hdr = {"Content-Type": "application/octet-stream", "Content-Encoding": encoding,
           "Content-Range": f"bytes 0-{len(body) - 1}/{len(data)}"}  # fmt: skip
    async with shub.http.put(f"/v1/blobs/{sha(data)}", data=body, headers=hdr) as r:
        status, reply = r.status, codec.unpack(await r.read(), canonical=False)
    assert status == 400 and reply["error"]["code"] == "bad_encoding", reply
    assert "Content-Encoding" in reply["error"]["reason"]
    assert shub.scans.blobs.upload_offset(sha(data)) == 0


async def test_bad_lacking_question_is_400(shub: ScanHub) -> None:
    for body in ({"hashes": ["XY"]}, {"hashes": "x"}, {"hashes": ["a" * 64] * 1001}, []):
        status, reply = await shub.post("/v1/blobs/lacking", codec.pack(body))
        assert status == 400 and reply["error"]["code"] == "bad_range", body


async def test_partial_upload_survives_a_restart(
    tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    data = page(9, 20_000)
    digest = sha(data)
    for step in (0, 1):
        store = await HubStore.open(tmp_path)
        h = await scan_hub(tmp_path, store, aiohttp_client)
        scans = h.scans
        try:
            if step == 0:
                await push_with_scans(h, [[data]])
                await h.put(digest, data[:7000], 0, len(data))
            else:
                _, reply = await h.lacking([digest])
                assert reply["blobs"] == [[digest, "lacking", 7000]]
                _, reply = await h.put(digest, data[7000:], 7000, len(data))
                assert reply == {"offset": len(data), "stored": 1}
                assert scans.blobs.path(digest).read_bytes() == data
                assert (await scans.counts()).to_dict() == {
                    "expected": 1, "held": 1, "missing": 0, "pending_upstream": 1,
                    "bytes_pending": len(data),
                }  # fmt: skip
        finally:
            await h.http.close()
            scans.close()
            await store.close()


async def test_metrics_status_and_dashboard_show_the_scans(shub: ScanHub) -> None:
    a, b = page(1), page(2)
    await push_with_scans(shub, [[a, b]])
    await shub.upload(a)
    async with shub.http.get("/metrics") as r:
        text = await r.text()
    for line in (
        "c1hub_scans_expected 2",
        "c1hub_scans_held 1",
        "c1hub_scans_missing 1",
        "c1hub_scans_pending_upstream 1",
        f"c1hub_scan_bytes_pending_upstream {len(a)}",
        "c1hub_scans_received_total 1",
        f"c1hub_scan_bytes_received_total {len(a)}",
    ):
        assert line in text.splitlines(), line  # fmt: skip
    async with shub.http.get("/v1/status") as r:
        st = await r.json()
    assert st["scans"]["missing"] == 1 and st["scans"]["entries_pending"] == 1
    assert st["scan_pending"][0]["missing"] == [sha(b)]
    text = status_text(st)
    assert "scans: 1 of 2 pages here, 1 pending (1 entries: scan pending, not missing), " in text
    assert f"1 not upstream yet ({len(a) / 1e6:.1f} MB)" in text
    async with shub.http.get("/?lang=en") as r:
        html = await r.text()
    assert "Scans: 1 of 2 pages here, 1 pending (1 entries: scan pending, not missing)" in html
    await shub.upload(b)
    async with shub.http.get("/") as r:
        html = await r.text()
    assert "Pindaian: 2 dari 2 halaman di sini, 0 menunggu" in html


async def test_disk_full_is_503_and_keeps_nothing_of_the_chunk(
    small_disk: Path,  # noqa: F811 - the fixture imported above
    aiohttp_client: MakeClient,
) -> None:
    store = await HubStore.open(small_disk)
    try:
        h = await scan_hub(small_disk, store, aiohttp_client)
        scans = h.scans
        data = page(3, 3_000_000)
        digest = sha(data)
        await push_with_scans(h, [[data]])
        assert (await h.put(digest, data[:1_000_000], 0, len(data)))[0] == 200
        filler = fill(small_disk, leave=200_000)
        async with h.http.put(f"/v1/blobs/{digest}", data=data[1_000_000:2_000_000], headers={
            "Content-Range": f"bytes 1000000-1999999/{len(data)}", "Accept": "application/json",
        }) as r:  # fmt: skip
            assert r.status == 503 and r.headers["Retry-After"] == "60"
            assert (await r.json())["error"]["code"] == "disk_full"
        assert scans.blobs.upload_offset(digest) == 1_000_000  # nothing of the chunk kept
        _, reply = await h.lacking([digest])
        assert reply["blobs"] == [[digest, "lacking", 1_000_000]]
        filler.unlink()
        await h.put(digest, data[1_000_000:2_000_000], 1_000_000, len(data))
        assert (await h.put(digest, data[2_000_000:], 2_000_000, len(data)))[1]["stored"] == 1
        assert scans.blobs.path(digest).read_bytes() == data
        await h.http.close()
        scans.close()
    finally:
        await store.close()


async def test_blobs_in_the_folder_from_before_the_book_are_held_after_a_restart(
    tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    """A data folder whose scans were kept before hub.db listed them (or a crash between the
    rename into place and the COMMIT): at start the folder is read and the book told."""
    data = page(7)
    digest = sha(data)
    store = await HubStore.open(tmp_path)
    try:
        h = await scan_hub(tmp_path, store, aiohttp_client)
        await push_with_scans(h, [[data, page(8)]])
        h.scans.blobs.put_chunks([data], expect=digest)  # in the folder, not in the book
        _, reply = await h.lacking([digest])
        assert reply["blobs"] == [[digest, "lacking", 0]]
        await h.http.close()
        h.scans.close()
    finally:
        await store.close()
    store = await HubStore.open(tmp_path)
    try:
        h = await scan_hub(tmp_path, store, aiohttp_client)  # loads the folder
        _, reply = await h.lacking([digest, sha(page(8))])
        assert reply["blobs"] == [[digest, "held", 0], [sha(page(8)), "lacking", 0]]
        rows = await store.db.fetchall("SELECT hash, size, kind FROM blobs")
        assert [tuple(r) for r in rows] == [(digest, len(data), "jpeg")]
        async with h.http.get(f"/v1/blobs/{digest}") as r:
            assert r.status == 200 and await r.read() == data
        await h.http.close()
        h.scans.close()
    finally:
        await store.close()
