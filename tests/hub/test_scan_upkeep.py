"""What a hub's scans cost it at start and when it clears abandoned partial uploads, over a
real store and a real blob folder: file opens counted with an audit hook (``sys.audit``'s
``open`` and ``os.remove`` events), whatever code makes them."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hub.blobstore import LocalBlobs, Writer
from hub.protocol import blobsync
from hub.scanbook import SqliteScanBook
from hub.scans import HubScans
from hub.shared.blobs import BlobInfo, BlobStore
from hub.shared.errors import BlobError
from hub.store import HubStore, StoreUnavailable

from .conftest import MakeClient
from .test_blobs import page, push_with_scans, scan_hub, sha

_watching: list[list[tuple[str, str, int]]] = []  # while a test watches: (event, path, thread)


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if _watching and event in ("open", "os.remove") and isinstance(args[0], (str, Path)):
        _watching[-1].append((event, str(args[0]), threading.get_ident()))


sys.addaudithook(_hook)  # audit hooks cannot be removed: this one records only when asked


@contextmanager
def watched() -> Iterator[list[tuple[str, str, int]]]:
    seen: list[tuple[str, str, int]] = []
    _watching.append(seen)
    try:
        yield seen
    finally:
        _watching.remove(seen)


async def test_a_restart_opens_no_scan_the_book_lists(
    tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    """At start the hub reads the blob folder's file names, and opens only a file its scan
    book does not list (here the one left by a crash between the rename and the COMMIT),
    not the 40 it lists."""
    pages = [page(i, 2000 + i) for i in range(42)]
    store = await HubStore.open(tmp_path)
    try:
        h = await scan_hub(tmp_path, store, aiohttp_client)
        await push_with_scans(h, [[p] for p in pages])
        for p in pages[:40]:
            await h.upload(p)
        h.scans.blobs.put_chunks([pages[40]], expect=sha(pages[40]))  # not in the book
        await h.http.close()
        h.scans.close()
    finally:
        await store.close()
    store = await HubStore.open(tmp_path)
    try:
        scans = HubScans(tmp_path, store, root=False)
        with watched() as seen:
            await scans.load()
        blob_dir = str(tmp_path / "blobs")
        opened = [p for e, p, _ in seen if e == "open" and p.startswith(blob_dir)]
        assert opened == [str(scans.blobs.path(sha(pages[40])))]
        assert len(scans.held) == 41 and sha(pages[40]) in scans.held  # listed now
        assert sha(pages[41]) not in scans.held
        scans.close()
    finally:
        await store.close()


async def test_abandoned_partial_uploads_are_removed_off_the_event_loop(
    tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    """``expire`` removes the partial uploads nobody extended for ``partial_max_age`` with the
    blob store's own ``expire_tmp``, on a worker thread: no file is removed on the loop's
    thread. One a chunk extended since stays."""
    pages = [page(i, 20_000) for i in range(6)]
    store = await HubStore.open(tmp_path)
    try:
        h = await scan_hub(tmp_path, store, aiohttp_client)
        await push_with_scans(h, [[p] for p in pages])
        for p in pages:
            status, _ = await h.put(sha(p), p[:5000], 0, len(p))
            assert status == 200
        old = time.time() - 3600
        for p in pages[:5]:
            os.utime(h.scans.blobs.upload_path(sha(p)), (old, old))
        h.scans.partial_max_age = 600
        loop_thread = threading.get_ident()
        with watched() as seen:
            assert await h.scans.expire() == 5
        removed = [(p, t) for e, p, t in seen if e == "os.remove"]
        assert sorted(p for p, _ in removed) == sorted(
            str(h.scans.blobs.upload_path(sha(p))) for p in pages[:5]
        )
        assert all(t != loop_thread for _, t in removed), "a file was removed on the loop"
        assert h.scans.blobs.upload_offset(sha(pages[5])) == 5000  # extended recently: kept
        _, reply = await h.lacking([sha(pages[0])])
        assert reply["blobs"] == [[sha(pages[0]), "lacking", 0]]  # starts again from 0
        assert (await h.put(sha(pages[0]), pages[0], 0, len(pages[0])))[0] == 200
        await h.http.close()
        h.scans.close()
    finally:
        await store.close()


async def test_blobs_finishing_together_share_one_commit_and_fail_together(
    tmp_path: Path,
) -> None:
    """Scans whose last chunks finish while the scan book commits share the next COMMIT (one
    fsync of hub.db for all); each add_held returns only after that COMMIT, and a COMMIT that
    fails leaves none of its scans held, on disk or in memory."""
    store = await HubStore.open(tmp_path)
    try:
        book = store.scan_book
        assert isinstance(book, SqliteScanBook)
        commits = [0]
        fail = [False]

        async def counted() -> None:
            commits[0] += 1
            if fail[0]:
                raise OSError("disk gone")

        store.db.before_commit = counted
        digests = [sha(page(i)) for i in range(12)]
        got = await asyncio.gather(*(book.add_held(d, 10, "jpeg", 1) for d in digests[:8]))
        assert got == [True] * 8 and commits[0] <= 2  # the first alone, the rest together
        rows = await store.db.fetchall("SELECT hash FROM blobs")
        assert {r[0] for r in rows} == set(digests[:8])
        fail[0] = True
        res = await asyncio.gather(
            *(book.add_held(d, 10, "jpeg", 1) for d in digests[8:]), return_exceptions=True
        )
        assert all(isinstance(r, OSError) for r in res), res
        assert not any(d in book.held_blobs for d in digests[8:])
        rows = await store.db.fetchall("SELECT hash FROM blobs")
        assert {r[0] for r in rows} == set(digests[:8])
    finally:
        store.db.before_commit = None
        await store.close()


async def test_a_blob_whose_caller_is_cancelled_after_queueing_is_held_in_memory_too(
    tmp_path: Path,
) -> None:
    """An upload whose request is dropped once its blob is queued for the scan book's COMMIT:
    the row still commits, so the book must say held too (else the laptop sends the whole
    scan again until a restart). The second add_held returns after the first's COMMIT (the
    batches commit in order), so by then the first is written, whatever became of its
    caller."""
    store = await HubStore.open(tmp_path)
    try:
        book = store.scan_book
        assert isinstance(book, SqliteScanBook)
        first, second = sha(page(1)), sha(page(2))
        task = asyncio.create_task(book.add_held(first, 10, "jpeg", 1))
        await asyncio.sleep(0)  # add_held runs up to its wait for the COMMIT
        assert not task.done()
        task.cancel()
        res = await asyncio.gather(task, return_exceptions=True)
        assert isinstance(res[0], asyncio.CancelledError), res
        assert await book.add_held(second, 10, "jpeg", 1)
        rows = await store.db.fetchall("SELECT hash FROM blobs")
        assert {r[0] for r in rows} == {first, second}
        assert await book.held(first) is not None and first in book.held_blobs
        assert not await book.add_held(first, 10, "jpeg", 1)  # not sent twice
    finally:
        await store.close()


async def test_a_cancelled_scan_book_writer_fails_every_blob_queued_behind_it(
    tmp_path: Path,
) -> None:
    """The scan book's writer cancelled inside its COMMIT (the hub stopping): the blob being
    written and the one queued meanwhile both fail (StoreUnavailable), none is left waiting
    for ever, none is held, and the store still closes."""
    store = await HubStore.open(tmp_path)
    try:
        book = store.scan_book
        assert isinstance(book, SqliteScanBook)
        entered, release = asyncio.Event(), asyncio.Event()

        async def stuck() -> None:
            entered.set()
            await release.wait()

        store.db.before_commit = stuck
        first, second = sha(page(1)), sha(page(2))
        a = asyncio.create_task(book.add_held(first, 10, "jpeg", 1))
        await entered.wait()
        b = asyncio.create_task(book.add_held(second, 10, "jpeg", 1))
        await asyncio.sleep(0)  # b is queued behind the stuck COMMIT
        writer = store._blob_writer
        assert writer is not None
        writer.cancel()
        # a bound only against a hang (the old code left b waiting for ever)
        res = await asyncio.wait_for(asyncio.gather(a, b, return_exceptions=True), 60)
        assert all(isinstance(r, StoreUnavailable) for r in res), res
        assert first not in book.held_blobs and second not in book.held_blobs
        assert await store.db.fetchall("SELECT hash FROM blobs") == []
    finally:
        store.db.before_commit = None
        await store.close()


async def test_a_failed_commit_whose_caller_is_gone_leaves_no_unretrieved_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An upload cancelled while its blob waits for a COMMIT that then fails: the blob is not
    held, and its failure (heard by no caller) is not logged as "never retrieved"."""
    store = await HubStore.open(tmp_path)
    try:
        book = store.scan_book
        assert isinstance(book, SqliteScanBook)

        async def failing() -> None:
            raise OSError("disk gone")

        store.db.before_commit = failing
        first, second = sha(page(1)), sha(page(2))
        task = asyncio.create_task(book.add_held(first, 10, "jpeg", 1))
        await asyncio.sleep(0)  # queued, waiting for its COMMIT
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        with pytest.raises(OSError):  # queued behind: returns once the first batch is done
            await book.add_held(second, 10, "jpeg", 1)
        del task
        gc.collect()
        assert first not in book.held_blobs
        assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
    finally:
        store.db.before_commit = None
        await store.close()


async def test_an_upload_answer_waits_for_no_commit_of_the_book_and_a_lost_row_comes_back(
    tmp_path: Path, aiohttp_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    """On SQLite with the scans in the data folder, the last chunk's answer comes once the
    blob is durable under its hash, without waiting for hub.db's COMMIT of its row (here
    stuck): the scan is held for everyone at once. A row that never commits (the COMMIT
    fails) is logged, and the next start lists the blob again from the folder."""
    pages = [page(i, 3000 + i) for i in range(2)]
    store = await HubStore.open(tmp_path)
    release = asyncio.Event()
    try:
        h = await scan_hub(tmp_path, store, aiohttp_client)
        await push_with_scans(h, [[p] for p in pages])

        async def stuck() -> None:
            await release.wait()

        store.db.before_commit = stuck
        # a bound only against a hang: before, the answer waited for the stuck COMMIT
        reply = await asyncio.wait_for(h.upload(pages[0], chunk=len(pages[0])), 60)
        assert reply == {"offset": len(pages[0]), "stored": 1}
        status, ans = await h.lacking([sha(pages[0])])
        assert status == 200 and ans["blobs"] == [[sha(pages[0]), "held", 0]]
        assert await store.db.fetchall("SELECT hash FROM blobs") == []  # the row waits
        release.set()
        await wait_rows(store, 1)

        async def failing() -> None:
            raise OSError("disk gone")

        store.db.before_commit = failing
        assert await h.upload(pages[1], chunk=len(pages[1])) == {
            "offset": len(pages[1]), "stored": 1,
        }  # fmt: skip
        await wait_logged(caplog, f"scan {sha(pages[1])} is stored but could not be listed")
        assert sha(pages[1]) in h.scans.held
        await h.http.close()
        h.scans.close()
    finally:
        release.set()
        store.db.before_commit = None
        await store.close()
    store = await HubStore.open(tmp_path)
    try:
        assert {r[0] for r in await store.db.fetchall("SELECT hash FROM blobs")} == {sha(pages[0])}
        scans = HubScans(tmp_path, store, root=False)
        await scans.load()
        assert set(scans.held) == {sha(p) for p in pages}  # listed again from the folder
        rows = await store.db.fetchall("SELECT hash FROM blobs")
        assert {r[0] for r in rows} == {sha(p) for p in pages}
        scans.close()
    finally:
        await store.close()


async def wait_rows(store: HubStore, n: int) -> None:
    """Until hub.db's ``blobs`` table has ``n`` rows (a bounded poll)."""
    for _ in range(6000):
        if len(await store.db.fetchall("SELECT hash FROM blobs")) == n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"hub.db never listed {n} scans")


async def wait_logged(caplog: pytest.LogCaptureFixture, text: str) -> None:
    """Until a record containing ``text`` is logged (a bounded poll)."""
    for _ in range(6000):
        if any(text in r.getMessage() for r in caplog.records):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never logged: {text}")


async def stopped_hub_naming(
    folder: Path, aiohttp_client: MakeClient, pages: list[bytes]
) -> BlobStore:
    """A hub in ``folder`` that took entries naming ``pages`` (one each) and stopped; its blob
    store, with the folder for partial uploads made."""
    store = await HubStore.open(folder)
    try:
        h = await scan_hub(folder, store, aiohttp_client)
        await push_with_scans(h, [[p] for p in pages])
        await h.http.close()
        h.scans.close()
    finally:
        await store.close()
    blobs = HubScans(folder, store, root=False).blobs
    blobs.tmp.mkdir(parents=True, exist_ok=True)
    return blobs


async def test_an_upload_a_crash_left_whole_is_finished_when_its_sender_comes_back(
    tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    """A hub killed between a scan's last chunk (appended, fsynced) and its rename leaves the
    whole scan as a partial upload. Its sender is told offset TOTAL and sends the last byte
    again: the upload is then checked whole and finished (before, "send from byte TOTAL" was
    refused for ever). One of full length whose bytes are not the scan (a power cut) is
    dropped and sent again from byte 0; one short of its end goes on where it is."""
    pages = [page(i, 4000 + i) for i in range(3)]
    blobs = await stopped_hub_naming(tmp_path, aiohttp_client, pages)
    whole, short, damaged = pages
    blobs.upload_path(sha(whole)).write_bytes(whole)
    blobs.upload_path(sha(short)).write_bytes(short[:1000])
    blobs.upload_path(sha(damaged)).write_bytes(bytes(len(damaged)))  # its length, no content
    store = await HubStore.open(tmp_path)
    try:
        h = await scan_hub(tmp_path, store, aiohttp_client)
        sender = blobsync.BlobSender()  # the senders' own logic: where to go on, what to send
        sender.offer([(sha(p), len(p)) for p in pages])
        sent: list[tuple[str, int, int]] = []
        for _ in range(20):
            step = sender.next_step(time.monotonic())
            if step is None:
                break
            if isinstance(step, blobsync.Ask):
                status, ans = await h.lacking(list(step.hashes))
                assert status == 200
                sender.lacking_answered(ans, time.monotonic())
                continue
            p = next(p for p in pages if sha(p) == step.hash)
            sent.append((step.hash, step.offset, step.length))
            status, ans = await h.put(step.hash, p[step.offset : step.offset + step.length],
                                      step.offset, step.total)  # fmt: skip
            if status == 200:
                sender.chunk_answered(ans)
            else:
                assert status == 409 and ans["error"]["code"] == "offset_mismatch", ans
                sender.failed("offset_mismatch", ans["error"]["reason"], time.monotonic())
        assert all(sender.state[sha(p)] == blobsync.HELD for p in pages), sender.state
        assert sent[0] == (sha(whole), len(whole) - 1, 1)  # the last byte, not the scan again
        assert (sha(damaged), 0, len(damaged)) in sent  # from byte 0 once dropped
        assert (sha(short), 1000, len(short) - 1000) in sent  # on from where it was
        for p in pages:
            assert sha(p) in h.scans.held and blobs.path(sha(p)).read_bytes() == p
            assert not blobs.upload_path(sha(p)).exists()
        await h.http.close()
        h.scans.close()
    finally:
        await store.close()


class AwayStore:
    """The data folder's blob store behind an object store's interface, whose ``adopt`` fails
    as an unreachable object store's does while ``away``."""

    def __init__(self, inner: LocalBlobs):
        self.inner = inner
        self.away = True

    async def has(self, digest: str) -> bool:
        return await self.inner.has(digest)

    async def info(self, digest: str) -> BlobInfo | None:
        return await self.inner.info(digest)

    def writer(self, expect: str | None = None) -> Writer:
        return self.inner.writer(expect)

    async def adopt(self, path: Path, digest: str) -> bool:
        if self.away:
            raise BlobError("unavailable", "the object store cannot be reached", "tidak terjangkau")
        return await self.inner.adopt(path, digest)

    def iter_chunks(
        self, digest: str, size: int = 65536, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        return self.inner.iter_chunks(digest, size, start, end)

    async def close(self) -> None:
        return None


async def test_a_whole_upload_waits_at_start_for_its_sender_while_the_object_store_is_away(
    tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    """A whole partial upload left by a crash, and the object store unreachable when the hub
    starts again: the hub starts (nothing is finished at start, where a failure would stop
    it), the sender's last byte is refused 503 ``unavailable`` with nothing lost, and once
    the store is back the same byte finishes the scan."""
    data = page(7, 6000)
    folder = await stopped_hub_naming(tmp_path, aiohttp_client, [data])
    folder.upload_path(sha(data)).write_bytes(data)
    away = AwayStore(LocalBlobs(BlobStore(tmp_path / "store")))
    store = await HubStore.open(tmp_path)
    try:
        h = await scan_hub(tmp_path, store, aiohttp_client, blobs=away)  # loads: no failure
        status, reply = await h.put(sha(data), data[-1:], len(data) - 1, len(data))
        assert status == 503 and reply["error"]["code"] == "unavailable", reply
        assert folder.upload_offset(sha(data)) == len(data) - 1  # before that byte: resent
        away.away = False
        _, ans = await h.lacking([sha(data)])
        assert ans["blobs"] == [[sha(data), "lacking", len(data) - 1]]
        status, reply = await h.put(sha(data), data[-1:], len(data) - 1, len(data))
        assert status == 200 and reply == {"offset": len(data), "stored": 1}, reply
        assert away.inner.store.path(sha(data)).read_bytes() == data
        assert sha(data) in h.scans.held and not folder.upload_path(sha(data)).exists()
        await h.http.close()
        h.scans.close()
    finally:
        await store.close()


async def test_partial_uploads_kept_open_are_bounded_oldest_first_and_resume_when_closed(
    tmp_path: Path, aiohttp_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Partial uploads stay open between their chunks up to ``MAX_OPEN`` (here 3): under it
    none is closed, over it the oldest goes first, and an upload closed that way goes on
    (read back from its file) to a whole, verified scan."""
    import hub.scans as hub_scans

    monkeypatch.setattr(hub_scans, "MAX_OPEN", 3)
    pages = [page(i, 3000 + i) for i in range(4)]
    store = await HubStore.open(tmp_path)
    try:
        h = await scan_hub(tmp_path, store, aiohttp_client)
        await push_with_scans(h, [[p] for p in pages])
        for p in pages[:3]:
            assert (await h.put(sha(p), p[:1000], 0, len(p)))[0] == 200
        assert list(h.scans._open) == [sha(p) for p in pages[:3]]  # none closed under it
        assert (await h.put(sha(pages[3]), pages[3][:1000], 0, len(pages[3])))[0] == 200
        assert list(h.scans._open) == [sha(p) for p in pages[1:]]  # the oldest went
        for p in pages:
            status, reply = await h.put(sha(p), p[1000:], 1000, len(p))
            assert status == 200 and reply == {"offset": len(p), "stored": 1}, reply
            assert h.scans.blobs.path(sha(p)).read_bytes() == p
        assert h.scans._open == {}
        await h.http.close()
        h.scans.close()
    finally:
        await store.close()
