"""Scans laptop -> room hub -> a root on PostgreSQL keeping its scans in an S3-compatible
object store (``c1hub national --db postgresql://... --blobs s3://...``), as real processes
with a real PostgreSQL and a real SeaweedFS (tests/servers/): every page arrives whole and
byte-identical, the root's status counts it held, and the root's data folder keeps no
finished blob (only partial uploads are staged there), also across a kill -9 of the root in
the middle of the transfer."""

from __future__ import annotations

import asyncio
import itertools
import os
import urllib.request

import pytest

from hub.shared.s3blobs import S3BlobStore
from tests.integration.procs import Procs, laptop_status, pg_fetch, sync, wait_for
from tests.integration.test_scans import room, scanned_forms, scans
from tests.servers.s3 import SeaweedServer

_prefixes = itertools.count(1)


@pytest.fixture
def s3_url(s3_server: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh prefix in the test server's bucket; the credentials in the environment the
    hub processes inherit (where a hub reads them)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    url = (
        f"s3://scans/national{os.getpid()}-{next(_prefixes)}"
        f"?endpoint={s3_server.endpoint}&region={s3_server.region}"
    )
    asyncio.run(_in_store(url, lambda s: s.ensure_bucket()))
    return url


async def _in_store(url: str, fn: object) -> object:
    s = await S3BlobStore.open(url)
    try:
        return await fn(s)  # type: ignore[operator]
    finally:
        await s.close()


async def _objects(s: S3BlobStore) -> dict[str, bytes]:
    """Every object under the store's prefix: key (without the prefix) -> bytes."""
    r = await s.client.list_objects_v2(Bucket=s.loc.bucket, Prefix=s.loc.prefix)
    out = {}
    for o in r.get("Contents", []):
        got = await s.client.get_object(Bucket=s.loc.bucket, Key=o["Key"])
        async with got["Body"] as body:
            out[o["Key"][len(s.loc.prefix) :]] = await body.read()
    return out


def test_scans_reach_a_postgresql_root_that_keeps_them_in_the_object_store(
    procs: Procs, pg_dsn: str, s3_url: str
) -> None:
    root = procs.hub("root", national=True, db=pg_dsn, extra=("--blobs", s3_url)).start()
    # a capped uplink, so that the transfer is still going when the root is killed
    hub, laptops = room(procs, root.url, 2, "--upstream-kbps", "1024")
    root.approve(hub.data.name)
    pages: dict[str, bytes] = {}
    for i, lt in enumerate(laptops):
        pages.update(scanned_forms(lt, 20, seed=700 + i, pages=2, size=60_000))
    assert len(pages) == 80
    for lt in laptops:
        assert sync(lt, hub.url)["scans"]["sent"] == 40

    wait_for(lambda: scans(root)["held"] >= 10, 120, "the root to hold some scans")
    root.kill9()
    held_at_kill = scans_in_db(pg_dsn)
    assert held_at_kill < 80, "the transfer was over before the root was killed"
    root.start()
    wait_for(lambda: scans(root)["held"] == 80, 300, "the root to hold every scan")
    r = scans(root)
    assert (r["expected"], r["held"], r["missing"], r["entries_pending"]) == (80, 80, 0, 0)

    # the root's data folder holds no finished blob, and no partial upload is left
    blobs = root.data / "blobs"
    assert list(blobs.glob("??/*")) == [], "a finished blob in the root's data folder"
    assert list(blobs.glob("tmp/*")) == [], "a partial upload left in the root's data folder"
    # the object store holds every page, byte-identical, under its hash, and nothing else
    objects = asyncio.run(_in_store(s3_url, _objects))
    assert objects == {f"blobs/{h[:2]}/{h}": p for h, p in pages.items()}
    for h, p in itertools.islice(pages.items(), 5):  # and the root serves them from there
        with urllib.request.urlopen(f"{root.url}/v1/blobs/{h}", timeout=10) as resp:
            assert resp.read() == p and resp.headers["ETag"] == f'"{h}"'

    wait_for(lambda: scans(hub)["pending_upstream"] == 0, 120, "the hub to know")
    for lt in laptops:
        sync(lt, hub.url)
        st = laptop_status(lt)["scans"]
        assert (st["local"], st["at_hub"], st["confirmed_upstream"]) == (0, 0, 40)


def scans_in_db(dsn: str) -> int:
    (row,) = pg_fetch(dsn, "SELECT count(size) FROM scans")
    return int(row[0])
