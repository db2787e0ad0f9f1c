"""The hub's scan store, chosen by ``--blobs``: the filesystem store in the data folder or a
real S3-compatible server (SeaweedFS, tests/servers/s3.py), one contract for both."""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from hub.blobstore import BLOBS_DIR, Blobs, LocalBlobs, open_blobs
from hub.config import HubConfig
from hub.node import Hub, init_data_dir
from hub.shared.errors import BlobError
from hub.shared.s3blobs import S3BlobError, S3BlobStore, parse_url
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


class _RacingS3:
    """A stand-in S3 client for the bucket checks at start only. SeaweedFS cannot produce
    these answers (two receivers' CreateBucket racing: AWS answers the loser 409
    OperationAborted; or a 503 SlowDown), so the hub's open path is driven here by a stub
    whose answers follow AWS's documented ones; everything else runs against SeaweedFS in
    the tests above."""

    def __init__(self, create_code: str, status: int, there_after: bool):
        self.create_code, self.status, self.there_after = create_code, status, there_after
        self.calls: list[str] = []

    async def head_bucket(self, **kw: object) -> dict[str, object]:
        self.calls.append("head")
        if self.there_after and "create" in self.calls:
            return {}
        raise ClientError(
            {"Error": {"Code": "404", "Message": "Not Found"},
             "ResponseMetadata": {"HTTPStatusCode": 404}}, "HeadBucket"
        )  # fmt: skip

    async def create_bucket(self, **kw: object) -> dict[str, object]:
        self.calls.append("create")
        raise ClientError(
            {"Error": {"Code": self.create_code, "Message": "refused"},
             "ResponseMetadata": {"HTTPStatusCode": self.status}}, "CreateBucket"
        )  # fmt: skip

    async def close(self) -> None:
        return None


async def _open_with(client: _RacingS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Blobs:
    async def opened(cls: type[S3BlobStore], url: str, **kw: object) -> S3BlobStore:
        return cls(client, parse_url(url))  # type: ignore[arg-type]

    monkeypatch.setattr(S3BlobStore, "open", classmethod(opened))
    return await open_blobs(tmp_path, "s3://racing/hub?endpoint=http://127.0.0.1:9")


async def test_a_bucket_another_receiver_creates_at_the_same_moment_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two receivers of one root starting together: the one whose CreateBucket loses the race
    (409 OperationAborted) finds the bucket there when it asks again, and starts."""
    client = _RacingS3("OperationAborted", 409, there_after=True)
    store = await _open_with(client, tmp_path, monkeypatch)
    try:
        assert client.calls == ["head", "create", "head"]
    finally:
        await store.close()


@pytest.mark.parametrize(("code", "status"), [("SlowDown", 503), ("InternalError", 500)])
async def test_a_bucket_create_the_server_cannot_answer_now_leaves_the_hub_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str, status: int
) -> None:
    """A CreateBucket answered by throttling or a server error is the object store out of
    reach for now, not a bucket that cannot exist: the hub starts (scans refused with 503 until
    the store answers), as for a store that cannot be reached at start."""
    client = _RacingS3(code, status, there_after=False)
    store = await _open_with(client, tmp_path, monkeypatch)
    await store.close()


async def test_a_bucket_that_cannot_be_created_still_stops_the_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bucket name someone else owns (409 BucketAlreadyExists, and not there for these
    credentials when asked again): the hub does not start, and says why."""
    from hub.errors import HubError

    client = _RacingS3("BucketAlreadyExists", 409, there_after=False)
    with pytest.raises(HubError, match="cannot be created"):
        await _open_with(client, tmp_path, monkeypatch)
