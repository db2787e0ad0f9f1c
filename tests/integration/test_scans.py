"""Scans laptop -> room hub -> root as real processes (docs/protocol.md "Scans").

Each test ends by comparing bytes: every page file a laptop was given against the blob the
root holds under its hash, and the root holding nothing else (no partial upload left either).
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import time
import urllib.request
from pathlib import Path
from typing import Any

from hub.protocol import blobsync
from tests.integration.procs import (
    HubProc,
    Procs,
    enter,
    generate,
    get_json,
    laptop_public,
    laptop_status,
    sync,
    wait_for,
)


def page_bytes(rng: random.Random, size: int) -> bytes:
    """A page-sized JPEG-looking file (start and end markers, random middle). A big one is a
    random 32-byte head (its own hash) and a random 64 KiB block repeated: made at once."""
    if size <= BLOCK:
        return b"\xff\xd8\xff\xe0" + rng.randbytes(size - 6) + b"\xff\xd9"
    head = b"\xff\xd8\xff\xe0" + rng.randbytes(32)
    block = rng.randbytes(BLOCK)
    body = block * ((size - len(head) - 2) // BLOCK + 1)
    return head + body[: size - len(head) - 2] + b"\xff\xd9"


BLOCK = 64 * 1024


def scanned_forms(data: Path, n: int, seed: int, pages: int, size: int) -> dict[str, bytes]:
    """Type ``n`` forms on the laptop at ``data``, each with ``pages`` page files given by
    path (as an operator's scanner folder would); returns hash -> bytes of every page."""
    rng = random.Random(seed)
    folder = data.parent / f"{data.name}-scanner"
    folder.mkdir(exist_ok=True)
    lines, pages_out = [], {}
    for i, line in enumerate(generate(n, seed)):
        form = json.loads(line)
        paths = []
        for p in range(pages):
            content = page_bytes(rng, size)
            path = folder / f"form{i:03d}-p{p}.jpg"
            path.write_bytes(content)
            pages_out[hashlib.sha256(content).hexdigest()] = content
            paths.append(str(path))
        form["scans"] = paths
        lines.append(json.dumps(form))
    enter(data, lines)
    return pages_out


def blob_files(node: Path) -> dict[str, Path]:
    root = node / "blobs"
    return {p.name: p for p in root.glob("??/*") if blobsync.is_hash(p.name)}


def assert_holds_exactly(node: Path, pages: dict[str, bytes]) -> None:
    held = blob_files(node)
    assert set(held) == set(pages), f"{node.name}: {len(held)} blobs, {len(pages)} pages"
    for h, p in held.items():
        assert p.read_bytes() == pages[h], f"{node.name}: blob {h} differs from the page"
    assert list((node / "blobs" / "tmp").glob("*")) == [], "a partial upload was left"


def room(procs: Procs, upstream: str, n: int, *extra: str) -> tuple[HubProc, list[Path]]:
    hub = procs.hub("room", extra=("--upstream", upstream, *extra)).start()
    laptops = [procs.laptop(f"laptop{i}") for i in range(n)]
    for lt in laptops:
        assert sync(lt, hub.url)["state"] == "pending"
        hub.approve(lt.name)
    return hub, laptops


def scans(hub: HubProc) -> dict[str, Any]:
    s: dict[str, Any] = hub.status()["scans"]
    return s


def test_three_laptops_two_pages_each_form_hub_and_root_killed_mid_transfer(
    procs: Procs,
) -> None:
    root = procs.hub("root", national=True).start()
    # a capped uplink, so that the transfers are still going when the processes are killed
    hub, laptops = room(procs, root.url, 3, "--upstream-kbps", "1024")
    root.approve(hub.data.name)
    pages: dict[str, bytes] = {}
    for i, lt in enumerate(laptops):
        pages.update(scanned_forms(lt, 50, seed=300 + i, pages=2, size=40_000))
    assert len(pages) == 300
    for lt in laptops:
        st = laptop_status(lt)["scans"]
        assert (st["local"], st["at_hub"], st["confirmed_upstream"]) == (100, 0, 0)
        assert st["bytes_pending"] == 100 * 40_000
        rep = sync(lt, hub.url)
        assert rep["scans"]["sent"] == 100 and rep["scans"]["error"] is None
        assert rep["scans"]["bytes"] == 100 * 40_000  # each page sent once, whole
    assert_holds_exactly(hub.data, pages)
    assert scans(hub)["held"] == 300 and scans(hub)["missing"] == 0

    wait_for(lambda: scans(root)["held"] >= 40, 120, "the root to hold some scans")
    root.kill9()
    root.start()
    wait_for(lambda: scans(root)["held"] >= 120, 120, "the root to hold more scans")
    hub.kill9()
    hub.start()
    held_at_restart = scans(root)["held"]
    assert held_at_restart < 300, "the transfer was over before the hub was killed"
    wait_for(lambda: scans(root)["held"] == 300, 300, "the root to hold every scan")
    assert_holds_exactly(root.data, pages)
    wait_for(lambda: scans(hub)["pending_upstream"] == 0, 120, "the hub to know")
    s = scans(hub)
    assert (s["expected"], s["held"], s["missing"], s["bytes_pending"]) == (300, 300, 0, 0)
    assert s["eta_s"] == 0.0
    r = scans(root)
    assert (r["expected"], r["held"], r["missing"], r["pending_upstream"]) == (300, 300, 0, 0)
    for lt in laptops:
        sync(lt, hub.url)
        st = laptop_status(lt)["scans"]
        assert (st["local"], st["at_hub"], st["confirmed_upstream"]) == (0, 0, 100)


def test_resets_mid_body_cost_at_most_one_chunk_each(procs: Procs) -> None:
    root = procs.hub("root", national=True).start()
    faults = {"p_cut": 0.3, "p_reset": 0.05, "p_drop": 0.05, "p_busy": 0.03,
              "retry_after": 1}  # fmt: skip
    proxy = procs.fault_proxy("proxy", root.url, seed=1066, faults=faults).start()
    kbps = 512  # chunks of 256 KiB: each page goes in three
    hub, (lt,) = room(procs, proxy.url, 1, "--upstream-kbps", str(kbps))
    root.approve(hub.data.name)
    pages = scanned_forms(lt, 6, seed=7, pages=1, size=600_000)
    assert sync(lt, hub.url)["scans"]["sent"] == 6
    wait_for(lambda: scans(root)["held"] == 6, 300, "the root to hold every scan")
    assert_holds_exactly(root.data, pages)

    st = proxy.stats()
    chunk = blobsync.chunk_size(kbps)
    put_paths = {f"/v1/blobs/{h}" for h in pages}
    interrupted = sum(
        n for kind in ("busy", "reset", "cut", "drop")
        for path, n in st["paths"].get(kind, {}).items() if path in put_paths
    )  # fmt: skip
    assert st["paths"].get("cut", {}).keys() & put_paths, "no upload was cut mid-body"
    sent = st["body_bytes"]["PUT"]
    blob_bytes = sum(len(p) for p in pages.values())
    print(f"upload bytes through the proxy {sent} for {blob_bytes} of scans; "
          f"{interrupted} uploads interrupted, chunk {chunk}")  # fmt: skip
    assert blob_bytes <= sent <= blob_bytes + interrupted * chunk, (sent, blob_bytes, interrupted)
    # every blob arrived once: the root stored six (it ran throughout)
    metrics = _metrics(root.url)
    assert metrics["c1hub_scans_received_total"] == 6


def test_a_new_entry_overtakes_a_big_scan_backlog(procs: Procs) -> None:
    """Under 2 Mbit/s with 200 MB of scans queued at the hub (about 13 minutes at that cap),
    an entry typed now goes upstream before any further scan chunk, and the queued scans go
    on after it: checked by the order of the requests on the link, not by the clock (how
    long it took, and the bytes still pending then, are printed and noted in
    docs/operations.md "Scans"). How far the backlog drained meanwhile depends only on the
    time the machine took, so it is printed, not asserted."""
    root = procs.hub("root", national=True).start()
    proxy = procs.fault_proxy("proxy", root.url, seed=1).start()  # no faults: a recorder
    kbps = 256  # 2 Mbit/s
    hub, (lt,) = room(procs, proxy.url, 1, "--upstream-kbps", str(kbps))
    root.approve(hub.data.name)
    n, size = 100, 2_000_000
    total = n * size  # 200 MB
    scanned_forms(lt, n, seed=11, pages=1, size=size)
    shutil.rmtree(lt.parent / f"{lt.name}-scanner")  # the laptop holds its own copy now
    assert sync(lt, hub.url)["scans"]["sent"] == n
    wait_for(lambda: _puts(proxy.stats()["order"]) >= 3, 120, "scans to flow upstream")
    queued = scans(hub)
    # every page is at the hub; at most one page left it per scan chunk sent upstream so far
    assert queued["held"] == n and queued["pending_upstream"] >= n - _puts(proxy.stats()["order"])

    enter(lt, generate(1, seed=99))
    at = proxy.stats()["counts"]["requests"]
    t0 = time.monotonic()
    sync(lt, hub.url)  # returns once the hub holds the entry (its receipt came back)
    d = time.monotonic() - t0
    last = laptop_status(lt)["entries"]
    wait_for(lambda: _root_seq(root, lt) == last, 300, "the new entry at the root")
    took = time.monotonic() - t0
    order = proxy.stats()["order"][at:]
    push = next(i for i, r in enumerate(order) if r == "POST /v1/push")
    puts_before = _puts(order[:push])
    # Under the cap a chunk of C bytes is followed by C / cap seconds of quiet, so while the
    # laptop synced (d seconds) at most d * cap / C + 1 chunks could start; after the hub
    # stored the entry, one more that was already on its way. A forwarder that let scans go
    # before entries would send the rest of the 200 MB backlog first.
    cap, chunk = kbps * 1024, blobsync.chunk_size(kbps)
    allowed = 2 + int(d * cap / chunk)
    pending = scans(hub)["bytes_pending"]
    print(f"new entry at the root {took:.2f} s after its sync began (sync {d:.2f} s); scan "
          f"chunks on the link between: {puts_before} (allowed {allowed}); scan bytes still "
          f"pending upstream: {pending / 1e6:.0f} MB of {total / 1e6:.0f} MB")  # fmt: skip
    assert puts_before <= allowed, order[: push + 1]
    # the entry went ahead of the backlog, not after it: queued scans still follow it
    assert pending > 0 and scans(root)["held"] < n
    wait_for(lambda: _puts(proxy.stats()["order"][at + push + 1 :]) >= 2, 120,
             "the queued scans to go on after the entry")  # fmt: skip


def _puts(order: list[str]) -> int:
    return sum(1 for r in order if r.startswith("PUT /v1/blobs/"))


def _root_seq(root: HubProc, lt: Path) -> int:
    return int(root.head(laptop_public(lt))["seq"])


def _metrics(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            k, v = line.split()
            out[k] = float(v)
    return out


def test_the_root_serves_a_page_with_ranges(procs: Procs) -> None:
    root = procs.hub("root", national=True).start()
    hub, (lt,) = room(procs, root.url, 1)
    root.approve(hub.data.name)
    pages = scanned_forms(lt, 1, seed=5, pages=1, size=5000)
    sync(lt, hub.url)
    ((h, data),) = pages.items()
    wait_for(lambda: scans(root)["held"] == 1, 120, "the root to hold the scan")
    req = urllib.request.Request(f"{root.url}/v1/blobs/{h}", headers={"Range": "bytes=0-99"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 206 and r.read() == data[:100]
        assert r.headers["ETag"] == f'"{h}"' and r.headers["Content-Type"] == "image/jpeg"
    wait_for(lambda: get_json(f"{hub.url}/v1/status")["scans"]["pending_upstream"] == 0, 60,
             "the hub to know the root holds it")  # fmt: skip
