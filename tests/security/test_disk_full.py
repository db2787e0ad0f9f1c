"""A full disk under a running hub (finding 9): pushes get the documented 503 ``unavailable``
(never a 500 with a text body, never a receipt for what was not saved), the heads the hub
reports never go backwards while it recovers, and it takes pushes again once there is room,
without a restart.

The hub's data folder is put on a small tmpfs, which needs root and ``mount``; where that is
not possible the tests skip and say loudly what did not run.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.protocol import receipt
from tests.integration.procs import HubProc, Procs, call_msgpack
from tests.security.forge import Log
from tests.security.wire import push

NOT_RUN = "finding 9 disk-full tests NOT RUN: "


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs mounted for this test only."""
    if os.geteuid() != 0:
        pytest.skip(NOT_RUN + f"mounting a small tmpfs needs root (running as uid {os.geteuid()})")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mnt)],
                       capture_output=True, text=True)  # fmt: skip
    if p.returncode != 0:
        pytest.skip(NOT_RUN + f"`mount -t tmpfs` failed: {p.stderr.strip() or p.returncode}")
    try:
        yield mnt
    finally:
        # Lazy: the hub may still hold files there until its fixture stops it.
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(disk: Path, leave: int = 0) -> Path:
    """Take all the free space on ``disk`` but about ``leave`` bytes; returns the filler."""
    filler = disk / "filler"
    chunk = b"\0" * 4096
    with open(filler, "wb", buffering=0) as f:
        st = os.statvfs(disk)
        f.write(b"\0" * max(st.f_bavail * st.f_frsize - leave - (1 << 20), 0))
        try:
            while os.statvfs(disk).f_bavail * st.f_frsize > leave:
                f.write(chunk)
        except OSError:
            pass  # full
    return filler


def _hub_on(procs: Procs, disk: Path) -> HubProc:
    hub = HubProc(disk / "hub")
    procs.hubs.append(hub)
    return hub.start()


@pytest.mark.xfail(
    strict=True,
    reason="finding 9: a push that cannot be saved because the disk "
    "is full gets HTTP 500 with a plain-text body, not 503 unavailable",
)
def test_push_on_a_full_disk_is_503_unavailable_then_recovers(
    procs: Procs, small_disk: Path
) -> None:
    hub = _hub_on(procs, small_disk)
    log = Log(0)
    assert push(hub.port, log.extend(10)).status == 200
    filler = fill(small_disk, leave=64 * 1024)
    failed = None
    for _ in range(60):
        batch = log.extend(200)
        r = push(hub.port, batch)
        if r.status != 200:
            failed = (r, batch)
            break
    assert failed is not None, "the disk never filled up"
    r, batch = failed
    assert r.status == 503, r
    assert r.error["code"] == "unavailable", r
    assert not r.decoded().get("receipts")
    head = hub.head(log.public)["seq"]
    assert head == log.records[-1].seq - len(batch)  # nothing of the refused batch was kept
    # Room again: the same records are taken, without a restart.
    filler.unlink()
    r = push(hub.port, batch)
    assert r.status == 200 and r.decoded()["accepted"] == len(batch), r
    (rc,) = [receipt.decode(x) for x in r.decoded()["receipts"]]
    assert rc.seq == log.records[-1].seq


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="finding 9: while the hub reloads after a failed commit, "
                   "GET /v1/heads reports seq 0 / unknown for devices it holds")  # fmt: skip
def test_heads_never_go_backwards_while_the_disk_is_full(procs: Procs, small_disk: Path) -> None:
    hub = _hub_on(procs, small_disk)
    # A store with some bulk (reloading it takes a moment), and one laptop we watch.
    for seed in range(1, 13):
        r = push(hub.port, Log(seed).extend(500))
        assert r.status == 200 and r.decoded()["accepted"] == 500, r
    watched = Log(13)
    assert push(hub.port, watched.extend(5)).status == 200
    # A restart checkpoints and drops the write-ahead log: from now on a commit needs new
    # blocks on the disk at once (a reused WAL file would take a few more commits to fill).
    hub.stop()
    hub.start()
    seen: list[tuple[int, str]] = []
    stop = threading.Event()

    def poll() -> None:
        url = f"{hub.url}/v1/heads/{watched.public.hex()}"
        while not stop.is_set():
            status, h = call_msgpack(url)
            seen.append((int(h["seq"]), str(h["state"])) if status == 200 else (-status, "error"))

    poller = threading.Thread(target=poll, name="heads-poller")
    poller.start()
    try:
        fill(small_disk)
        writer = Log(14)
        # Up to 150 pushes that fail, each making the hub recover (today a poll goes
        # backwards within a few of them; the bound keeps the fixed hub's run finite).
        for _ in range(150):
            push(hub.port, writer.extend(100))
            if any(s != (5, "pending") for s in seen):
                break
    finally:
        stop.set()
        poller.join(timeout=60)
    backwards = [s for s in seen if s != (5, "pending")]
    assert len(seen) > 100, len(seen)
    assert not backwards, f"{len(backwards)} of {len(seen)} polls: {sorted(set(backwards))}"
