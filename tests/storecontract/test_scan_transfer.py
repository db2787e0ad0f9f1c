"""The scan endpoints (docs/protocol.md "Scans") over every store of conftest.py and both blob
stores (the data folder; a real S3-compatible server, SeaweedFS): the same guarantees
whichever keeps the entries and the blobs. With the object store, partial uploads are staged
in the data folder and a blob reaches the object store only once its hash is verified; the
data folder keeps no finished blob."""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.blobstore import Blobs, open_blobs
from hub.scans import HubScans
from hub.server import make_app
from hub.service import HubService
from hub.shared.s3blobs import S3BlobStore
from hub.storage import HubStorage
from tests.helpers import chain, forms
from tests.hub.conftest import HUB_KEY, TOKEN, MakeClient
from tests.hub.test_blobs import LAPTOP, ScanHub
from tests.servers.s3 import SeaweedServer
from tests.shared.images import jpeg
from tests.storecontract.conftest import Opener

_prefixes = itertools.count(1)


def s3_url(s3: SeaweedServer, endpoint: str | None = None) -> str:
    return (
        f"s3://scans/t{os.getpid()}-{next(_prefixes)}"
        f"?endpoint={endpoint or s3.endpoint}&region={s3.region}"
    )


def page(n: int, size: int = 5000) -> bytes:
    return jpeg(bytes([n % 256]) * size)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Receiver:
    """One receiver: a hub service over a store, its scans in ``folder`` (partial uploads)
    and ``blobs``, and a client to its app."""

    def __init__(self, h: ScanHub, blobs: Blobs, folder: Path):
        self.h, self.blobs, self.folder = h, blobs, folder


@pytest.fixture(params=["folder", "s3"])
def blob_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def receivers(
    tmp_path: Path, open_store: Opener, blob_kind: str, aiohttp_client: MakeClient,
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest,
) -> AsyncIterator[Any]:  # fmt: skip
    """``await make(store, folder)``: a receiver (the blob store shared by all of a test's
    receivers when it is S3)."""
    url = None
    if blob_kind == "s3":
        s3: SeaweedServer = request.getfixturevalue("s3_server")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
        url = s3_url(s3)
    made: list[tuple[HubScans, Blobs]] = []

    async def make(store: HubStorage, folder: str = "r1", **kw: Any) -> Receiver:
        (tmp_path / folder).mkdir(exist_ok=True)
        blobs = await open_blobs(tmp_path / folder, url)
        if isinstance(blobs, S3BlobStore):
            await blobs.ensure_bucket()
        scans = HubScans(tmp_path / folder, store, root=True, blobs=blobs, **kw)
        await scans.load()
        made.append((scans, blobs))
        service = HubService(store, HUB_KEY, name="Test Hub", root=False, scans=scans)
        app = make_app(service, admin_token=TOKEN, max_body=16 << 20)
        h = ScanHub(service, await aiohttp_client(app))
        h.scans = scans
        return Receiver(h, blobs, tmp_path / folder)

    yield make
    for scans, blobs in made:
        scans.close()
        await blobs.close()


async def push_pages(h: ScanHub, pages: list[list[bytes]], seed: int = 5) -> None:
    bodies = forms(len(pages), seed=seed)
    for b, ps in zip(bodies, pages, strict=True):
        b["scans"] = [sha(p) for p in ps]
    if await h.store.device(LAPTOP.public) is None:
        await h.enrolled(LAPTOP, approve=True)
    status, reply = await h.push([r.raw for r in chain(LAPTOP, bodies)])
    assert status == 200 and reply["accepted"] == len(pages), reply


async def s3_keys(blobs: Blobs) -> list[str]:
    """Every object under the store's prefix (S3), or every file under blobs/ but tmp/."""
    if isinstance(blobs, S3BlobStore):
        r = await blobs.client.list_objects_v2(Bucket=blobs.loc.bucket, Prefix=blobs.loc.prefix)
        return [o["Key"][len(blobs.loc.prefix) :] for o in r.get("Contents", [])]
    return []


def finished_in_folder(folder: Path) -> list[str]:
    return [p.name for p in (folder / "blobs").glob("??/*")]


async def get(h: ScanHub, digest: str, **headers: str) -> tuple[int, bytes, Any]:
    async with h.http.get(f"/v1/blobs/{digest}", headers=headers) as r:
        return r.status, await r.read(), r.headers


async def test_a_scan_is_taken_in_chunks_and_exists_only_when_whole(
    open_store: Opener, receivers: Any, blob_kind: str
) -> None:
    r = await receivers(await open_store())
    h = r.h
    a, b = page(1, 20_000), page(2)
    _, reply = await h.lacking([sha(a)])
    assert reply == {"blobs": [[sha(a), "unknown", 0]]}
    status, reply = await h.put(sha(a), a[:1000], 0, len(a))  # no entry names it yet
    assert status == 409 and reply["error"]["code"] == "not_named"
    await push_pages(h, [[a, b]])
    _, reply = await h.lacking([sha(a), sha(b)])
    assert reply["blobs"] == [[sha(a), "lacking", 0], [sha(b), "lacking", 0]]
    assert (await h.put(sha(a), a[:7000], 0, len(a))) == (200, {"offset": 7000, "stored": 0})
    _, reply = await h.lacking([sha(a)])
    assert reply["blobs"] == [[sha(a), "lacking", 7000]]  # resumable: the offset held durably
    assert (await get(h, sha(a)))[0] == 404
    assert await s3_keys(r.blobs) == [] and finished_in_folder(r.folder) == []
    status, reply = await h.put(sha(a), a[5000:9000], 5000, len(a))
    assert status == 409 and reply["error"]["code"] == "offset_mismatch"
    assert (await h.put(sha(a), a[7000:], 7000, len(a))) == (
        200, {"offset": len(a), "stored": 1}
    )  # fmt: skip
    _, reply = await h.lacking([sha(a), sha(b)])
    assert reply["blobs"] == [[sha(a), "held", 0], [sha(b), "lacking", 0]]
    status, body, hdr = await get(h, sha(a))
    assert (status, body, hdr["Content-Type"], hdr["ETag"]) == (
        200, a, "image/jpeg", f'"{sha(a)}"'
    )  # fmt: skip
    status, body, hdr = await get(h, sha(a), Range="bytes=100-199")
    assert (status, body, hdr["Content-Range"]) == (206, a[100:200], f"bytes 100-199/{len(a)}")
    async with h.http.head(f"/v1/blobs/{sha(a)}") as resp:
        assert resp.status == 200 and resp.content_length == len(a)
    if blob_kind == "s3":  # the finished blob is in the object store, under its hash only
        assert await s3_keys(r.blobs) == [f"blobs/{sha(a)[:2]}/{sha(a)}"]
        assert finished_in_folder(r.folder) == []
    else:
        assert finished_in_folder(r.folder) == [sha(a)]
    assert list((r.folder / "blobs" / "tmp").glob("*")) == []
    st = await h.service.status(max_age=0)
    assert (st["scans"]["held"], st["scans"]["missing"], st["scans"]["entries_pending"]) == (
        1, 1, 1
    )  # fmt: skip
    assert st["scan_pending"][0]["missing"] == [sha(b)]


async def test_a_blob_that_is_not_what_its_name_says_is_never_stored(
    open_store: Opener, receivers: Any
) -> None:
    r = await receivers(await open_store())
    h = r.h
    a, other = page(3), page(4)
    text = b"plain text, not a page" * 10
    await push_pages(h, [[a], [text]])
    digest = sha(a)
    wrong = other  # a whole JPEG of the same size, other bytes
    await h.put(digest, wrong[:1000], 0, len(wrong))
    status, reply = await h.put(digest, wrong[1000:], 1000, len(wrong))
    assert status == 422 and reply["error"]["code"] == "hash_mismatch"
    assert await s3_keys(r.blobs) == [] and finished_in_folder(r.folder) == []
    _, reply = await h.lacking([digest])
    assert reply["blobs"] == [[digest, "lacking", 0]]  # nothing kept: send it again whole
    status, reply = await h.put(sha(text), text, 0, len(text))
    assert status == 415 and reply["error"]["code"] == "not_an_image"
    assert await s3_keys(r.blobs) == [] and finished_in_folder(r.folder) == []
