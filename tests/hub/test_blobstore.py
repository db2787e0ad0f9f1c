"""The hub's scan store, chosen by ``--blobs``: the filesystem store in the data folder or a
real S3-compatible server (SeaweedFS, tests/servers/s3.py), one contract for both."""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.blobstore import BLOBS_DIR, Blobs, LocalBlobs, open_blobs
from hub.config import HubConfig
from hub.node import Hub, init_data_dir
from hub.shared.errors import BlobError
from hub.shared.s3blobs import S3BlobError
from tests.servers.s3 import SeaweedServer
from tests.shared.images import png

_prefixes = itertools.count(1)


def s3_url(s3: SeaweedServer) -> str:
    return (
        f"s3://scans/hub{os.getpid()}-{next(_prefixes)}?endpoint={s3.endpoint}&region={s3.region}"
    )


@pytest.fixture
def s3_env(s3_server: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> SeaweedServer:
    """The object store's credentials, where a hub reads them: the AWS environment."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    return s3_server


@pytest.fixture(params=["folder", "s3"])
async def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Blobs]:
    url = None
    if request.param == "s3":
        url = s3_url(request.getfixturevalue("s3_env"))
    store = await open_blobs(tmp_path, url)
    try:
        if url:
            await store.ensure_bucket()  # type: ignore[attr-defined]
        yield store
    finally:
        await store.close()


async def test_a_scan_is_kept_under_its_hash_and_only_its_bytes(blobs: Blobs) -> None:
    page = png()
    digest = hashlib.sha256(page).hexdigest()
    assert not await blobs.has(digest) and await blobs.info(digest) is None
    w = blobs.writer(digest)
    await w.write(page[:10])
    await w.write(page[10:])
    held = await w.commit()
    assert (held.hash, held.size, held.new) == (digest, len(page), True)
    assert await blobs.has(digest)
    info = await blobs.info(digest)
    assert info is not None and (info.hash, info.size) == (digest, len(page))
    assert b"".join([c async for c in blobs.iter_chunks(digest)]) == page
    again = blobs.writer(digest)  # the same scan again: held once
    await again.write(page)
    assert not (await again.commit()).new
    other = png(rgb=(1, 2, 3))
    wrong = blobs.writer(hashlib.sha256(other).hexdigest())
    await wrong.write(page)  # bytes that do not hash to the expected name
    with pytest.raises((BlobError, S3BlobError)) as err:
        await wrong.commit()
    assert err.value.code == "hash_mismatch"
    assert not await blobs.has(hashlib.sha256(other).hexdigest())


async def test_the_hub_opens_the_store_its_setting_names(
    tmp_path: Path, s3_env: SeaweedServer
) -> None:
    init_data_dir(tmp_path / "a", "A")
    hub = Hub(HubConfig(data_dir=tmp_path / "a", host="127.0.0.1", port=0, mdns=False,
                        examine_workers="threads"))  # fmt: skip
    async with hub:
        assert isinstance(hub.service.blobs, LocalBlobs)
        assert (tmp_path / "a" / BLOBS_DIR).is_dir()
    init_data_dir(tmp_path / "b", "B")
    url = s3_url(s3_env)
    hub = Hub(HubConfig(data_dir=tmp_path / "b", host="127.0.0.1", port=0, mdns=False,
                        examine_workers="threads", root=True, blobs=url))  # fmt: skip
    async with hub:
        from hub.shared.s3blobs import S3BlobStore

        assert isinstance(hub.service.blobs, S3BlobStore)
        assert hub.service.blobs.loc.endpoint == s3_env.endpoint
    assert not (tmp_path / "b" / BLOBS_DIR).exists()


async def test_the_hub_creates_the_bucket_its_setting_names_when_missing(
    tmp_path: Path, s3_env: SeaweedServer
) -> None:
    """``--blobs s3://BUCKET/...`` naming a bucket that does not exist: the hub creates it at
    start, and the scans it receives are kept there."""
    bucket = f"fresh{os.getpid()}-{next(_prefixes)}"
    url = f"s3://{bucket}/hub?endpoint={s3_env.endpoint}&region={s3_env.region}"
    init_data_dir(tmp_path / "c", "C")
    hub = Hub(HubConfig(data_dir=tmp_path / "c", host="127.0.0.1", port=0, mdns=False,
                        examine_workers="threads", root=True, blobs=url))  # fmt: skip
    async with hub:
        from hub.shared.s3blobs import S3BlobStore

        blobs = hub.service.blobs
        assert isinstance(blobs, S3BlobStore) and blobs.loc.bucket == bucket
        await blobs.client.head_bucket(Bucket=bucket)  # there now
        page = png()
        w = blobs.writer(hashlib.sha256(page).hexdigest())
        await w.write(page)
        assert (await w.commit()).new
        assert await blobs.has(hashlib.sha256(page).hexdigest())
    again = Hub(HubConfig(data_dir=tmp_path / "c", host="127.0.0.1", port=0, mdns=False,
                          examine_workers="threads", root=True, blobs=url))  # fmt: skip
    async with again:  # the bucket is there now: started as before, the scan still held
        assert await again.service.blobs.has(hashlib.sha256(page).hexdigest())
