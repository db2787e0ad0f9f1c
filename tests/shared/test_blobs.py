"""The content-addressed blob store: hashed while streamed, checked by content, durable."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from hub.shared import blobs
from hub.shared.blobs import BlobStore
from hub.shared.errors import BlobError

from .images import jpeg, pdf, png


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs", max_size=64 * 1024)


@pytest.mark.parametrize(("data", "kind"), [(png(), "png"), (jpeg(), "jpeg"), (pdf(), "pdf")])
def test_put_file_stores_under_sha256(store: BlobStore, tmp_path: Path, data: bytes, kind: str):
    src = tmp_path / "scan.bin"  # the name says nothing: the content decides
    src.write_bytes(data)
    info = store.put_file(src)
    digest = hashlib.sha256(data).hexdigest()
    assert (info.hash, info.size, info.kind, info.new) == (digest, len(data), kind, True)
    assert store.path(digest) == store.root / digest[:2] / digest
    assert store.path(digest).read_bytes() == data
    assert store.has(digest) and store.verify(digest)
    assert store.info(digest) == blobs.BlobInfo(digest, len(data), kind, new=False)
    assert b"".join(store.iter_chunks(digest, 7)) == data
    assert list(store.tmp.iterdir()) == []


def test_same_content_is_stored_once(store: BlobStore, tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.jpg"
    a.write_bytes(png())
    b.write_bytes(png())
    first, second = store.put_file(a), store.put_file(b)
    assert first.hash == second.hash and first.new and not second.new
    assert len([p for p in store.root.rglob("*") if p.is_file()]) == 1


def test_chunks_of_any_size(store: BlobStore) -> None:
    data = png(60, 60)
    info = store.put_chunks(data[i : i + 3] for i in range(0, len(data), 3))
    assert info.hash == hashlib.sha256(data).hexdigest() and info.kind == "png"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"GIF89a" + b"\0" * 40, "not_an_image"),
        (b"hello, this is text pretending to be a scan", "not_an_image"),
        (b"", "empty"),
        (png()[:-6], "incomplete"),
        (jpeg()[:-2], "incomplete"),
        (pdf().replace(b"%%EOF", b"%%EOX"), "incomplete"),
    ],
)
def test_bad_content_is_refused_and_leaves_nothing(store: BlobStore, data: bytes, code: str):
    with pytest.raises(BlobError) as err:
        store.put_chunks([data])
    assert err.value.code == code
    assert err.value.pesan and err.value.message
    assert [p for p in store.root.rglob("*") if p.is_file()] == []


def test_size_limit_stops_the_stream_early(store: BlobStore) -> None:
    sent = []

    def chunks():
        yield png()
        for _ in range(100):
            sent.append(1)
            yield b"\0" * 4096

    with pytest.raises(BlobError) as err:
        store.put_chunks(chunks())
    assert err.value.code == "too_large" and "MiB" in err.value.message
    assert len(sent) < 20  # refused as soon as the limit was crossed, not after reading it all
    assert [p for p in store.root.rglob("*") if p.is_file()] == []


def test_expected_hash_must_match(store: BlobStore) -> None:
    data = pdf()
    right = hashlib.sha256(data).hexdigest()
    with pytest.raises(BlobError) as err:
        store.put_chunks([data], expect="0" * 64)
    assert err.value.code == "hash_mismatch"
    assert not store.has(right)
    assert store.put_chunks([data], expect=right).hash == right
    with pytest.raises(BlobError) as err:
        store.writer(expect="XYZ")
    assert err.value.code == "not_a_hash"


def test_writer_aborts_when_left_without_commit(store: BlobStore) -> None:
    with store.writer() as w:
        w.write(png()[:100])
    assert list(store.tmp.iterdir()) == []
    with pytest.raises(BlobError):
        w.write(b"more")


def test_missing_and_bad_names(store: BlobStore, tmp_path: Path) -> None:
    assert not store.has("ab" * 32) and not store.has("../../etc/passwd")
    assert store.info("ab" * 32) is None
    with pytest.raises(BlobError) as err:
        store.open("ab" * 32)
    assert err.value.code == "not_found"
    with pytest.raises(BlobError) as err:
        store.path("../" + "a" * 61)
    assert err.value.code == "not_a_hash"
    with pytest.raises(BlobError) as err:
        store.put_file(tmp_path / "nope.png")
    assert err.value.code == "unreadable"


def test_crash_leftovers_are_cleaned(store: BlobStore) -> None:
    w = store.writer()
    w.write(png()[:50])  # a crash here leaves the temporary file
    assert len(list(store.tmp.glob("*.part"))) == 1
    w._f.close()  # type: ignore[union-attr]  # as the dead process would
    assert store.clean_tmp() == 1
    assert list(store.tmp.glob("*.part")) == []


def test_detects_a_blob_changed_on_disk(store: BlobStore) -> None:
    info = store.put_chunks([png()])
    p = store.path(info.hash)
    p.write_bytes(p.read_bytes()[:-1] + b"\x00")
    assert not store.verify(info.hash)


def test_never_holds_a_whole_blob_in_memory(store: BlobStore, tmp_path: Path) -> None:
    big = BlobStore(tmp_path / "big", max_size=8 * 1024 * 1024)
    src = tmp_path / "big.pdf"
    with open(src, "wb") as f:
        f.write(b"%PDF-1.4\n")
        for _ in range(100):
            f.write(b"x" * 65536)
        f.write(b"\n%%EOF\n")
    import tracemalloc

    tracemalloc.start()
    try:
        info = big.put_file(src)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == src.stat().st_size
    assert peak < 1024 * 1024, f"peak {peak} bytes while storing a {info.size}-byte file"
