"""The object-store blob store against a real S3-compatible server (SeaweedFS, started by
tests/servers/s3.py): a blob exists under its hash only when all its bytes hash to it."""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import AsyncIterator

import pytest

from hub.shared.s3blobs import S3BlobError, S3BlobStore, parse_url
from tests.servers.s3 import SeaweedServer

PART = 5 * 1024 * 1024  # S3's smallest part: keeps the multipart tests small
_prefixes = itertools.count(1)


@pytest.fixture
async def store(s3_server: SeaweedServer) -> AsyncIterator[S3BlobStore]:
    # One bucket (each bucket is a SeaweedFS collection with volumes of its own), a prefix per
    # test: every test sees only its own keys.
    url = f"s3://scans/t{os.getpid()}-{next(_prefixes)}?endpoint={s3_server.endpoint}"
    s = await S3BlobStore.open(url, access_key=s3_server.access_key,
                               secret_key=s3_server.secret_key, part_size=PART,
                               max_size=4 * PART)  # fmt: skip
    try:
        await s.ensure_bucket()
        yield s
    finally:
        await s.close()


def chunks(data: bytes, size: int = 64 * 1024) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def leftovers(s: S3BlobStore) -> int:
    ups = await s.client.list_multipart_uploads(Bucket=s.loc.bucket, Prefix=s.loc.prefix)
    objs = await s.client.list_objects_v2(Bucket=s.loc.bucket, Prefix=s.loc.prefix + "tmp/")
    return len(ups.get("Uploads", [])) + len(objs.get("Contents", []))


def test_url() -> None:
    loc = parse_url("s3://scans/national?endpoint=http://127.0.0.1:8333&region=ap-southeast-3")
    assert (loc.bucket, loc.prefix, loc.endpoint, loc.region) == (
        "scans", "national/", "http://127.0.0.1:8333", "ap-southeast-3"
    )  # fmt: skip
    with pytest.raises(ValueError):
        parse_url("http://scans")


async def test_a_page_is_stored_once_under_its_hash(store: S3BlobStore) -> None:
    data = os.urandom(300_000)
    digest = hashlib.sha256(data).hexdigest()
    assert not await store.has(digest)
    info = await store.put_chunks(chunks(data), expect=digest)
    assert (info.hash, info.size, info.new) == (digest, len(data), True)
    assert await store.has(digest) and await store.verify(digest)
    assert b"".join([c async for c in store.iter_chunks(digest)]) == data
    again = await store.put_chunks(chunks(data))
    assert again.hash == digest and not again.new
    head = await store.client.head_object(Bucket=store.loc.bucket, Key=store.key(digest))
    assert "immutable" in head["CacheControl"]
    assert await leftovers(store) == 0


async def test_wrong_bytes_never_appear_under_the_expected_hash(store: S3BlobStore) -> None:
    data, other = os.urandom(1000), os.urandom(1000)
    digest = hashlib.sha256(data).hexdigest()
    with pytest.raises(S3BlobError) as e:
        await store.put_chunks(chunks(other), expect=digest)
    assert e.value.code == "hash_mismatch"
    assert not await store.has(digest) and not await store.has(hashlib.sha256(other).hexdigest())
    # Large enough for a multipart upload: refused after the parts went up, nothing left.
    big = os.urandom(2 * PART + 10)
    with pytest.raises(S3BlobError) as e:
        await store.put_chunks(chunks(big), expect=digest)
    assert e.value.code == "hash_mismatch"
    assert not await store.has(digest) and await leftovers(store) == 0


async def test_the_server_refuses_bytes_that_do_not_hash_to_the_key(store: S3BlobStore) -> None:
    """The final PUT carries the hash: bytes changed on the way are refused by the server."""
    data = os.urandom(5000)
    digest = hashlib.sha256(data).digest()
    with pytest.raises(S3BlobError) as e:
        await store.put_final(store.key(digest.hex()), data[:-1] + b"!", digest)
    assert e.value.code == "hash_mismatch"
    assert not await store.has(digest.hex())


async def test_a_long_scan_goes_up_in_parts_and_appears_whole(store: S3BlobStore) -> None:
    data = os.urandom(2 * PART + 12345)
    digest = hashlib.sha256(data).hexdigest()
    info = await store.put_chunks(chunks(data), expect=digest)
    assert info.size == len(data) and info.new
    assert await store.verify(digest)
    assert (await store.info(digest)) is not None
    assert await leftovers(store) == 0
    assert not (await store.put_chunks(chunks(data))).new
    assert await leftovers(store) == 0


async def test_limits_and_errors(store: S3BlobStore) -> None:
    with pytest.raises(S3BlobError) as e:
        await store.put_chunks(chunks(os.urandom(4 * PART + 1)))
    assert e.value.code == "too_large" and await leftovers(store) == 0
    with pytest.raises(S3BlobError) as e:
        await store.put_chunks([])
    assert e.value.code == "empty"
    with pytest.raises(S3BlobError) as e:
        store.writer("not-a-hash")
    assert e.value.code == "not_a_hash"
    with pytest.raises(S3BlobError) as e:
        async for _ in store.iter_chunks("0" * 64):
            pass
    assert e.value.code == "not_found"
    assert await store.info("0" * 64) is None


async def test_an_abandoned_upload_leaves_no_blob_and_is_cleaned(store: S3BlobStore) -> None:
    """A receiver that dies mid-upload (the writer is never committed nor aborted) leaves an
    incomplete multipart upload under tmp/, never a blob; clean_tmp removes it."""
    data = os.urandom(PART + 100)
    w = store.writer(hashlib.sha256(data).hexdigest())
    for c in chunks(data):
        await w.write(c)  # one part is up; the writer is then dropped, as by a crash
    assert not await store.has(hashlib.sha256(data).hexdigest())
    assert await leftovers(store) == 1
    assert await store.clean_tmp() == 1
    assert await leftovers(store) == 0
