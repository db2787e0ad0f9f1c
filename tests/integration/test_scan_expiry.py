"""Unfinished scan copies do not stay in ``blobs/tmp`` forever (docs/configuration.md
``partial_max_age``): real hub and laptop processes, real files.

A hub removes a partial upload nobody extended for ``partial_max_age`` (at start, and while
it runs), never one a sender is still extending; a laptop removes a half-written page copy
left by a crash at the start of a sync round and when the station starts, never one another
process is writing right now.
"""

from __future__ import annotations

import hashlib
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from hub.protocol import codec
from hub.shared.blobs import BlobStore
from tests.integration.procs import HubProc, Procs, call_msgpack, sync, wait_for
from tests.integration.test_scans import scanned_forms
from tests.ui.harness import Station

WEEK = 7 * 24 * 3600
CHUNK = 20_000


def put_chunk(url: str, digest: str, data: bytes, start: int, total: int) -> tuple[int, Any]:
    """One upload chunk (``PUT /v1/blobs/{sha256}``), as a sender sends it."""
    req = urllib.request.Request(f"{url}/v1/blobs/{digest}", data=data, method="PUT")
    req.add_header("Content-Type", "application/octet-stream")
    req.add_header("Content-Range", f"bytes {start}-{start + len(data) - 1}/{total}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, codec.unpack(r.read(), canonical=False)
    except urllib.error.HTTPError as exc:
        return exc.code, codec.unpack(exc.read(), canonical=False)


def offset(hub: HubProc, digest: str) -> int:
    status, reply = call_msgpack(f"{hub.url}/v1/blobs/lacking", {"hashes": [digest]})
    assert status == 200, reply
    [[_, state, off]] = reply["blobs"]
    assert state == "lacking", reply
    return int(off)


def partial(hub: HubProc, digest: str) -> Path:
    return hub.data / "blobs" / "tmp" / f"{digest}.upload"


def entries_without_their_scans(procs: Procs, hub: HubProc, n: int) -> list[bytes]:
    """A laptop's entries naming ``n`` pages reach ``hub``; the pages themselves do not (the
    laptop lost them): the hub is waiting for them. Returns the pages."""
    lt = procs.laptop("laptop")
    pages = scanned_forms(lt, n, seed=11, pages=1, size=5 * CHUNK)
    for p in (lt / "blobs").glob("??/*"):
        p.unlink()
    rep = sync(lt, hub.url)
    assert rep["pushed"] == n and rep["scans"]["sent"] == 0, rep
    return list(pages.values())


def age(path: Path, seconds: float) -> None:
    """Make ``path`` look last written ``seconds`` ago."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_hub_start_removes_an_abandoned_upload_and_keeps_a_recent_one(procs: Procs) -> None:
    hub = procs.hub("hub", extra=("--approve-all",)).start()
    a, b = entries_without_their_scans(procs, hub, 2)
    ha, hb = hashlib.sha256(a).hexdigest(), hashlib.sha256(b).hexdigest()
    for h, data in ((ha, a), (hb, b)):
        assert put_chunk(hub.url, h, data[:CHUNK], 0, len(data)) == (
            200, {"offset": CHUNK, "stored": 0})  # fmt: skip
    hub.stop()
    age(partial(hub, ha), WEEK + 60)  # its sender never came back
    age(partial(hub, hb), WEEK - 3600)  # extended six days 23 hours ago: still its sender's
    hub.start()
    assert not partial(hub, ha).exists()
    assert offset(hub, ha) == 0  # a sender coming back now starts it again
    assert offset(hub, hb) == CHUNK
    status, reply = put_chunk(hub.url, hb, b[CHUNK:], CHUNK, len(b))
    assert (status, reply) == (200, {"offset": len(b), "stored": 1})
    assert (hub.data / "blobs" / hb[:2] / hb).read_bytes() == b
    # the abandoned one can be sent whole again
    assert put_chunk(hub.url, ha, a, 0, len(a)) == (200, {"offset": len(a), "stored": 1})
    assert sorted(p.name for p in (hub.data / "blobs" / "tmp").iterdir()) == []


def test_running_hub_expires_an_abandoned_upload_never_one_being_extended(
    procs: Procs,
) -> None:
    max_age = 6.0
    hub = procs.hub("hub", extra=("--approve-all", "--partial-max-age", str(max_age))).start()
    a, b = entries_without_their_scans(procs, hub, 2)
    ha, hb = hashlib.sha256(a).hexdigest(), hashlib.sha256(b).hexdigest()
    assert put_chunk(hub.url, ha, a[:CHUNK], 0, len(a))[0] == 200
    # B is extended a little at a time, for longer than max_age in all, while A is left alone
    step = 1000
    t0 = time.monotonic()
    off = 0
    while off < len(b) - step and (
        partial(hub, ha).exists() or time.monotonic() - t0 < max_age + 1
    ):
        status, reply = put_chunk(hub.url, hb, b[off : off + step], off, len(b))
        assert (status, reply) == (200, {"offset": off + step, "stored": 0}), (off, reply)
        off += step
        time.sleep(0.2)
    assert time.monotonic() - t0 > max_age  # B lived longer than max_age, extended all along
    wait_for(lambda: not partial(hub, ha).exists(), 60, "the abandoned upload to go")
    assert offset(hub, ha) == 0
    assert offset(hub, hb) == off
    status, reply = put_chunk(hub.url, hb, b[off:], off, len(b))
    assert (status, reply) == (200, {"offset": len(b), "stored": 1})
    assert (hub.data / "blobs" / hb[:2] / hb).read_bytes() == b


def half_copy(blobs: BlobStore, data: bytes) -> Any:
    """A page being copied into the store by another process right now (a ``BlobWriter``
    with half the page written), and its file."""
    w = blobs.writer(hashlib.sha256(data).hexdigest())
    w.write(data[: len(data) // 2])
    w.sync()
    return w


def test_laptop_sync_and_station_remove_crash_leftovers_not_a_copy_in_progress(
    procs: Procs, tmp_path: Path
) -> None:
    hub = procs.hub("hub", extra=("--approve-all",)).start()
    lt = procs.laptop("laptop")
    blobs = BlobStore(lt / "blobs")
    page = b"\xff\xd8\xff\xe0" + os.urandom(50_000) + b"\xff\xd9"

    # a crash left a half copy a week ago; another copy is being written right now
    old = half_copy(blobs, page)
    old.close_keep()
    [old_file] = list(blobs.tmp.iterdir())
    age(old_file, WEEK + 60)
    busy = half_copy(blobs, page)
    sync(lt, hub.url)
    assert not old_file.exists()
    busy.write(page[len(page) // 2 :])
    info = busy.commit()  # the copy in progress was left alone
    assert blobs.path(info.hash).read_bytes() == page

    # the station, at its start, the same way
    old = half_copy(blobs, page)
    old.close_keep()
    old_file = next(p for p in blobs.tmp.iterdir())
    age(old_file, WEEK + 60)
    busy = half_copy(blobs, page)
    busy_file = next(p for p in blobs.tmp.iterdir() if p != old_file)
    st = Station(lt)
    try:
        st.start()
        assert not old_file.exists()
        assert busy_file.exists()
    finally:
        st.close()
    busy.write(page[len(page) // 2 :])
    assert busy.commit().hash == info.hash
    assert list(blobs.tmp.iterdir()) == []
