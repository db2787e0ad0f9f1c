"""Scans at a hub on PostgreSQL with its blobs in a real S3-compatible server (SeaweedFS):
several receivers share the scan book; the object store unreachable at the last chunk keeps
nothing and acknowledges nothing; a blob over one S3 part; a PostgreSQL hub forwarding its
scans upstream from the object store."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from client.sync import sync_once
from hub.pg.store import PgStore
from hub.shared.s3blobs import S3BlobStore
from tests.client.test_scansync import laptop_with_scans
from tests.client.test_sync import eventually, make_hub
from tests.servers.s3 import SeaweedServer
from tests.shared.images import jpeg
from tests.storecontract.test_scan_transfer import (  # noqa: F401 - the fixture
    finished_in_folder,
    get,
    push_pages,
    receivers,
    s3_keys,
    s3_url,
)

pytestmark = pytest.mark.usefixtures("s3_env")


@pytest.fixture
def s3_env(s3_server: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> SeaweedServer:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    return s3_server


@pytest.fixture(params=["s3"])
def blob_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def open_store(pg_dsn: str) -> Any:
    opened: list[PgStore] = []

    async def make() -> PgStore:
        s = await PgStore.open(pg_dsn, max_size=4)
        opened.append(s)
        return s

    yield make
    for s in opened:
        await s.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_receivers_on_one_database_share_what_they_hold(
    open_store: Any,
    receivers: Any,  # noqa: F811 - the fixture imported above
) -> None:
    a_store, b_store = await open_store(), await open_store()
    a = await receivers(a_store, "a")
    b = await receivers(b_store, "b")
    one, two = jpeg(b"\x01" * 30_000), jpeg(b"\x02" * 30_000)
    await push_pages(a.h, [[one, two]])
    _, reply = await b.h.lacking([sha(one)])  # the entry came through A: B knows it is named
    assert reply["blobs"] == [[sha(one), "lacking", 0]]
    assert (await a.h.put(sha(one), one, 0, len(one)))[1]["stored"] == 1
    _, reply = await b.h.lacking([sha(one), sha(two)])  # taken by A: held for B too
    assert reply["blobs"] == [[sha(one), "held", 0], [sha(two), "lacking", 0]]
    status, body, _ = await get(b.h, sha(one))  # B reads it from the object store
    assert (status, body) == (200, one)
    status, reply = await b.h.put(sha(one), one, 0, len(one))
    assert status == 409 and reply["error"]["code"] == "offset_mismatch"
    assert reply["error"].get("offset", len(one)) == len(one)
    # the same blob sent to both at once: both answer stored, the object store holds it once
    results = await asyncio.gather(
        a.h.put(sha(two), two, 0, len(two)), b.h.put(sha(two), two, 0, len(two))
    )
    assert {r[0] for r in results} <= {200, 409}
    assert any(r[0] == 200 and r[1]["stored"] == 1 for r in results)
    assert sorted(await s3_keys(a.blobs)) == sorted(
        f"blobs/{h[:2]}/{h}" for h in (sha(one), sha(two))
    )
    assert finished_in_folder(a.folder) == finished_in_folder(b.folder) == []
    sa = await a.h.service.status(max_age=0)
    sb = await b.h.service.status(max_age=0)
    assert sa["scans"]["held"] == sb["scans"]["held"] == 2 and sb["scans"]["missing"] == 0


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_unreachable_object_store_acknowledges_nothing(
    open_store: Any,
    receivers: Any,  # noqa: F811 - the fixture imported above
    s3_env: SeaweedServer,
    tmp_path: Path,
) -> None:
    r = await receivers(await open_store())
    h, scans = r.h, r.h.scans
    data = jpeg(b"\x05" * 40_000)
    digest = sha(data)
    await push_pages(h, [[data]])
    real = scans.final
    down = await S3BlobStore.open(s3_url(s3_env, f"http://127.0.0.1:{closed_port()}"))
    scans.final = down
    try:
        assert (await h.put(digest, data[:30_000], 0, len(data)))[0] == 200  # staged here
        async with h.http.put(f"/v1/blobs/{digest}", data=data[30_000:], headers={
            "Content-Range": f"bytes 30000-{len(data) - 1}/{len(data)}",
        }) as resp:  # fmt: skip
            assert resp.status == 503 and resp.headers["Retry-After"] == "10"
        _, reply = await h.lacking([digest])
        assert reply["blobs"] == [[digest, "lacking", 30_000]]  # only the last chunk again
        assert await scans.book.held(digest) is None
    finally:
        await down.close()
        scans.final = real
    assert (await h.put(digest, data[30_000:], 30_000, len(data)))[1]["stored"] == 1
    assert (await get(h, digest))[1] == data
    assert finished_in_folder(r.folder) == []


async def test_a_blob_larger_than_one_part_goes_up_whole(
    open_store: Any,
    receivers: Any,  # noqa: F811 - the fixture imported above
) -> None:
    r = await receivers(await open_store())
    data = jpeg(bytes(range(256)) * (9 * 4096))  # ~9 MiB: over the 8 MiB part
    assert len(data) > 8 * 1024 * 1024
    await push_pages(r.h, [[data]])
    reply = await r.h.upload(data, chunk=1024 * 1024)
    assert reply == {"offset": len(data), "stored": 1}
    assert (await get(r.h, sha(data)))[1] == data
    assert await s3_keys(r.blobs) == [f"blobs/{sha(data)[:2]}/{sha(data)}"]  # no tmp/ left


async def test_a_postgresql_hub_forwards_its_scans_from_the_object_store(
    tmp_path: Path, pg_dsn: str, s3_env: SeaweedServer
) -> None:
    url = s3_url(s3_env)
    await make_bucket(url)
    async with make_hub(tmp_path, "root", root=True, approve_all=True) as root:
        assert root.url is not None
        prov = make_hub(tmp_path, "prov", upstream=root.url, approve_all=True, db=pg_dsn,
                        blobs=url)  # fmt: skip
        async with prov as hub, aiohttp.ClientSession() as http:
            store = await laptop_with_scans(tmp_path, "l1", 4)
            try:
                rep = await sync_once(store, http, hub_url=hub.url, batch=2)
                assert rep.at_hub == 4 and rep.scans.sent == 8 and rep.scans.error is None
            finally:
                await store.close()
            assert finished_in_folder(tmp_path / "prov") == []
            root_scans = root.service.scans
            assert root_scans is not None
            await eventually(lambda: len(root_scans.held) == 8)
            pscans = hub.service.scans
            assert pscans is not None
            for digest in root_scans.held:
                want = root_scans.blobs.path(digest).read_bytes()
                assert await pscans.read_bytes(digest, 0, len(want)) == want
            for _ in range(600):  # the hub knows upstream holds them all
                if (await pscans.counts()).pending_upstream == 0:
                    break
                await asyncio.sleep(0.05)
            assert (await pscans.counts()).to_dict() == {
                "expected": 8, "held": 8, "missing": 0, "pending_upstream": 0, "bytes_pending": 0
            }  # fmt: skip


async def make_bucket(url: str) -> None:
    """Create the bucket of ``url`` (a deployment makes it once; the hub does not)."""
    s = await S3BlobStore.open(url)
    try:
        await s.ensure_bucket()
    finally:
        await s.close()
