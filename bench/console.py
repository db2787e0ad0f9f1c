"""Console benchmark: a real ``c1hub serve`` with a big room, and Debian's headless Chromium.

Prints, each next to a baseline measured in the same run:

1. first paint — the room view of a hub holding --entries signed entries from --devices
                 laptops (double entry, a few conflicts): the browser's first contentful paint
                 and the time to the page's load event, cold (right after the hub started:
                 the provisional page, counts follow by the stream), and warm; baseline: the
                 same page of an empty hub.
                 Goal: first paint < 1 s.
2. ingest      — entries/s pushed by --pushers concurrent laptops (batches of --batch) into
                 that hub, with no console open and with --consoles consoles open (each a
                 browser tab on the room view, live over server-sent events), alternating,
                 --runs times each, fresh laptops every phase; median of each.
                 Goal: with consoles >= 95% of without. Beside the rates, the hub's CPU
                 time per 1,000 entries in each phase, split into its event loop's thread,
                 its other threads (SQLite, derivations) and its worker processes: a figure
                 the machine's other load disturbs far less than the rates.

    .venv/bin/python bench/console.py [--entries 50000] [--devices 500] [--consoles 5]
        [--push 20000] [--pushers 4] [--batch 500] [--runs 2]

Everything stays on 127.0.0.1. Needs /usr/bin/chromium (Debian's) and the dev extras.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hub.protocol import codec  # noqa: E402
from hub.protocol.identity import Identity  # noqa: E402
from tests.integration.procs import HubProc, call_msgpack, get_json  # noqa: E402
from tests.ui import roomfill  # noqa: E402
from tests.ui.harness import browser_missing, chromium  # noqa: E402

PAINT_JS = """() => {
  const p = performance.getEntriesByName('first-contentful-paint')[0];
  const n = performance.getEntriesByType('navigation')[0];
  return [p ? p.startTime : null, n ? n.loadEventEnd : null];
}"""


def paint(ctx: Any, url: str) -> tuple[float, float]:
    page = ctx.new_page()
    page.goto(url + "/", wait_until="load")
    page.wait_for_function(
        "() => performance.getEntriesByName('first-contentful-paint').length > 0"
        " && performance.getEntriesByType('navigation')[0].loadEventEnd > 0"
    )
    fcp, load = page.evaluate(PAINT_JS)
    page.close()
    return fcp / 1000, load / 1000


def hub_cpu(pid: int) -> dict[str, float]:
    """CPU seconds used so far by a hub: its event loop's thread (the main thread), its other
    threads (live or ended), and the processes under it (the examine workers, their
    forkserver)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, int]] = {}  # pid -> (parent, utime + stime)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            f = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        stats[int(stat.parent.name)] = (int(f[1]), int(f[11]) + int(f[12]))
    below, todo = 0, [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, ticks) in stats.items():
            if ppid == parent:
                below += ticks
                todo.append(child)
    f = (Path(f"/proc/{pid}/task/{pid}/stat")).read_text().rsplit(")", 1)[1].split()
    loop = int(f[11]) + int(f[12])
    total = stats[pid][1]
    return {"loop": loop / tick, "threads": (total - loop) / tick, "workers": below / tick}


def push_phase(
    url: str, hub_public: bytes, n: int, pushers: int, batch: int, tag: str, seed: int
) -> float:
    """Fresh laptops (enrolled and approved before timing) push ``n`` entries; entries/s."""
    idents = [Identity.generate() for _ in range(pushers)]
    roomfill.enroll_all(url, hub_public, idents, name=f"Bench {tag}")
    logs = roomfill.records(idents, n, seed=seed, double=False)
    errors: list[BaseException] = []

    def run(log: list[Any]) -> None:
        try:
            raws = [r.raw for r in log]
            for i in range(0, len(raws), batch):
                reply = roomfill.post(
                    url + "/v1/push", codec.pack({"records": raws[i : i + batch]})
                )
                assert reply["accepted"] == len(raws[i : i + batch]), reply
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(log,)) for log in logs]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return sum(len(log) for log in logs) / took


def _accepted(page: Any) -> int:
    text = page.locator('main [data-count="accepted"]').inner_text()
    return int(text) if text.isdigit() else -1


def settle(hub: HubProc, pages: list[Any]) -> None:
    """Open the consoles and wait until each shows what the hub holds: the steady state of
    consoles left open, not the moment of opening them."""
    want = get_json(hub.url + "/v1/status", timeout=300)["entries"]["accepted"]
    for p in pages:
        p.goto(hub.url + "/")
        p.wait_for_selector('#live[data-live="on"]', timeout=120_000)
    for p in pages:
        p.wait_for_function(
            "(n) => document.querySelector('main [data-count=accepted]').textContent == n",
            arg=str(want), timeout=120_000,
        )  # fmt: skip
    time.sleep(2.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--entries", type=int, default=50_000)
    ap.add_argument("--devices", type=int, default=500)
    ap.add_argument("--consoles", type=int, default=5)
    ap.add_argument("--push", type=int, default=20_000)
    ap.add_argument("--pushers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--runs", type=int, default=2)
    a = ap.parse_args()
    why = browser_missing()
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="c1-bench-console-") as tmp:
        empty = HubProc(Path(tmp) / "empty").start()
        big = HubProc(Path(tmp) / "big", extra=("--approve-all",)).start()
        try:
            return run(a, empty, big)
        finally:
            empty.stop()
            big.stop()


def run(a: argparse.Namespace, empty: HubProc, big: HubProc) -> int:
    _, hello = call_msgpack(big.url + "/v1/hello")
    public = hello["public"]
    print(f"filling: {a.entries} entries from {a.devices} laptops ...", file=sys.stderr)
    idents = [Identity.generate() for _ in range(a.devices)]
    roomfill.enroll_all(big.url, public, idents)
    t0 = time.perf_counter()
    logs = roomfill.records(idents, a.entries)
    print(f"  signed in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    t0 = time.perf_counter()
    stored = roomfill.push_all(big.url, logs)
    print(f"  pushed {stored} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    status = get_json(big.url + "/v1/status", timeout=300)
    print(f"  hub: {status['entries']['accepted']} accepted, tps {status['tps']}, "
          f"{len(status['device_list'])} devices", file=sys.stderr)  # fmt: skip
    with chromium() as ctx:
        base_fcp, base_load = paint(ctx, empty.url)
        big.stop()
        big.start()  # cold: nothing derived yet
        cold_fcp, cold_load = paint(ctx, big.url)
        warm = [paint(ctx, big.url) for _ in range(3)]
        warm_fcp = statistics.median(w[0] for w in warm)
        warm_load = statistics.median(w[1] for w in warm)
        print()
        print(f"first paint, {a.entries} entries / {a.devices} devices (goal < 1 s):")
        rows = (("empty hub (baseline)", base_fcp, base_load),
                ("big hub, cold", cold_fcp, cold_load),
                ("big hub, warm", warm_fcp, warm_load))  # fmt: skip
        for label, fcp, load in rows:
            print(f"  {label:20}: FCP {fcp * 1000:6.0f} ms   load {load * 1000:6.0f} ms")

        without: list[float] = []
        with_consoles: list[float] = []
        cpu: dict[bool, list[dict[str, float]]] = {False: [], True: []}
        assert big.proc is not None
        seed = 100
        for r in range(a.runs):
            # alternate the order, so that a drift in the machine's load falls on both sides
            for consoles in (False, True) if r % 2 == 0 else (True, False):
                seed += 1
                pages = [ctx.new_page() for _ in range(a.consoles if consoles else 0)]
                settle(big, pages)
                c0 = hub_cpu(big.proc.pid)
                rate = push_phase(big.url, public, a.push, a.pushers, a.batch, f"r{seed}", seed)
                c1 = hub_cpu(big.proc.pid)
                cpu[consoles].append({k: (c1[k] - c0[k]) * 1000 / a.push for k in c0})
                (with_consoles if consoles else without).append(rate)
                shown = [_accepted(p) for p in pages]
                for p in pages:
                    p.close()
                what = "no console"
                if shown:
                    what = (
                        f"{len(shown)} consoles open (they showed {min(shown)} accepted at the end)"
                    )
                c = cpu[consoles][-1]
                print(f"  run {r + 1}: {rate:7.0f}/s  hub CPU per 1000: loop {c['loop']:.2f} s,"
                      f" threads {c['threads']:.2f} s, workers {c['workers']:.2f} s  {what}",
                      file=sys.stderr)  # fmt: skip
    w0, w1 = statistics.median(without), statistics.median(with_consoles)
    print()
    print(f"ingest, {a.pushers} pushers x batches of {a.batch}, {a.push} entries a phase:")
    print(f"  no console (baseline)  : {w0:8.0f} entries/s")
    print(f"  {a.consoles} consoles open       : {w1:8.0f} entries/s   = {100 * w1 / w0:5.1f}% "
          "(goal >= 95%)")  # fmt: skip
    print("  hub CPU s per 1000 entries (median): loop / other threads / workers")
    for consoles in (False, True):
        label = f"{a.consoles} consoles open" if consoles else "no console"
        med = {k: statistics.median(c[k] for c in cpu[consoles]) for k in cpu[consoles][0]}
        print(f"  {label:23}: {med['loop']:6.2f} / {med['threads']:6.2f} / {med['workers']:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
