"""Console benchmark: a real ``c1hub serve`` with a big room, and Debian's headless Chromium.

Prints, each next to a baseline measured in the same run:

1. first paint — the room view of a hub holding --entries signed entries from --devices
                 laptops (double entry, a few conflicts): the browser's first contentful paint
                 and the time to the page's load event, cold (right after the hub started:
                 the provisional page, counts follow by the stream; median of --cold
                 restarts), and warm (median of 3); baseline: the same page of an empty hub.
                 Goal: first paint < 1 s.
2. ingest      — entries/s pushed by --pushers concurrent laptops (batches of --batch) into
                 that hub, with no console open and with --consoles consoles open (each a
                 browser tab on the room view, live over server-sent events), alternating,
                 --runs times each, fresh laptops every phase; median of each.
                 Goal: with consoles >= 95% of without. Beside the rates, the CPU time per
                 1,000 entries while pushing: the hub's event loop's thread, its other
                 threads (SQLite, derivations) and its examine workers; the pushers (this
                 process); the browser. The machine's other load disturbs these figures
                 far less than the rates.

    .venv/bin/python bench/console.py [--entries 50000] [--devices 500] [--consoles 5]
        [--push 20000] [--pushers 4] [--batch 500] [--runs 2] [--cold 3]

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
from collections.abc import Callable
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


def _ticks() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, CPU ticks used so far) of every process."""
    out: dict[int, tuple[int, int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            f = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        out[int(stat.parent.name)] = (int(f[1]), int(f[11]) + int(f[12]))
    return out


def _below(stats: dict[int, tuple[int, int]], pid: int) -> int:
    """CPU ticks of the processes under ``pid``."""
    total, todo = 0, [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, ticks) in stats.items():
            if ppid == parent:
                total += ticks
                todo.append(child)
    return total


def cpu_now(hub: int, hubs: set[int]) -> dict[str, float]:
    """CPU seconds used so far by the hub ``hub`` (its event loop's thread, its other threads
    live or ended, the processes under it: the examine workers), by this process (the
    pushers' threads) and by the processes under this one that are not ``hubs`` (the
    browser)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = _ticks()
    f = Path(f"/proc/{hub}/task/{hub}/stat").read_text().rsplit(")", 1)[1].split()
    loop = int(f[11]) + int(f[12])
    me = os.getpid()
    browser = sum(ticks + _below(stats, p) for p, (ppid, ticks) in stats.items()
                  if ppid == me and p not in hubs)  # fmt: skip
    return {
        "loop": loop / tick,
        "threads": (stats[hub][1] - loop) / tick,
        "workers": _below(stats, hub) / tick,
        "pushers": stats[me][1] / tick,
        "browser": browser / tick,
    }


def push_phase(
    url: str,
    hub_public: bytes,
    n: int,
    pushers: int,
    batch: int,
    tag: str,
    seed: int,
    cpu: Callable[[], dict[str, float]],
) -> tuple[float, dict[str, float]]:
    """Fresh laptops (enrolled and approved before timing) push ``n`` entries: entries/s, and
    the CPU seconds per 1000 entries while they pushed (``cpu`` before and after)."""  # fmt: skip
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
    c0 = cpu()
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - t0
    c1 = cpu()
    if errors:
        raise errors[0]
    total = sum(len(log) for log in logs)
    return total / took, {k: (c1[k] - c0[k]) * 1000 / total for k in c0}


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
    ap.add_argument("--cold", type=int, default=3, help="restarts for the cold first paint")
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
        cold = []
        for _ in range(a.cold):
            big.stop()
            big.start()  # cold: nothing derived yet
            cold.append(paint(ctx, big.url))
        cold_fcp = statistics.median(c[0] for c in cold)
        cold_load = statistics.median(c[1] for c in cold)
        warm = [paint(ctx, big.url) for _ in range(3)]
        warm_fcp = statistics.median(w[0] for w in warm)
        warm_load = statistics.median(w[1] for w in warm)
        print()
        print(f"first paint, {a.entries} entries / {a.devices} devices (goal < 1 s):")
        rows = (("empty hub (baseline)", base_fcp, base_load),
                (f"big hub, cold (x{a.cold})", cold_fcp, cold_load),
                ("big hub, warm", warm_fcp, warm_load))  # fmt: skip
        for label, fcp, load in rows:
            print(f"  {label:22}: FCP {fcp * 1000:6.0f} ms   load {load * 1000:6.0f} ms")

        without: list[float] = []
        with_consoles: list[float] = []
        cpu: dict[bool, list[dict[str, float]]] = {False: [], True: []}
        assert big.proc is not None and empty.proc is not None
        hub, hubs = big.proc.pid, {big.proc.pid, empty.proc.pid}
        seed = 100
        for r in range(a.runs):
            # alternate the order, so that a drift in the machine's load falls on both sides
            for consoles in (False, True) if r % 2 == 0 else (True, False):
                seed += 1
                pages = [ctx.new_page() for _ in range(a.consoles if consoles else 0)]
                settle(big, pages)
                rate, used = push_phase(big.url, public, a.push, a.pushers, a.batch, f"r{seed}",
                                        seed, lambda: cpu_now(hub, hubs))  # fmt: skip
                cpu[consoles].append(used)
                (with_consoles if consoles else without).append(rate)
                shown = [_accepted(p) for p in pages]
                for p in pages:
                    p.close()
                what = "no console"
                if shown:
                    what = (
                        f"{len(shown)} consoles open (they showed {min(shown)} accepted at the end)"
                    )
                print(f"  run {r + 1}: {rate:7.0f}/s  CPU s per 1000: {_cpu_line(used)}  {what}",
                      file=sys.stderr)  # fmt: skip
    w0, w1 = statistics.median(without), statistics.median(with_consoles)
    print()
    print(f"ingest, {a.pushers} pushers x batches of {a.batch}, {a.push} entries a phase:")
    print(f"  no console (baseline)  : {w0:8.0f} entries/s")
    print(f"  {a.consoles} consoles open       : {w1:8.0f} entries/s   = {100 * w1 / w0:5.1f}% "
          "(goal >= 95%)")  # fmt: skip
    print("  CPU seconds per 1000 entries while pushing (median): the hub's event loop, its")
    print("  other threads, its examine workers; the pushers; the browser")
    total: dict[bool, float] = {}
    for consoles in (False, True):
        label = f"{a.consoles} consoles open" if consoles else "no console"
        med = {k: statistics.median(c[k] for c in cpu[consoles]) for k in cpu[consoles][0]}
        print(f"  {label:23}: {_cpu_line(med)}")
        total[consoles] = statistics.median(sum(c.values()) for c in cpu[consoles])
    # On a machine whose cores the pushing saturates, the rate goes as the inverse of the CPU
    # all parts spend per entry; this ratio moves far less with the machine's other load.
    hub_cpu = {k: statistics.median(c["loop"] + c["threads"] + c["workers"] for c in cpu[k])
               for k in (False, True)}  # fmt: skip
    print(f"  CPU per 1000 entries, all parts: {total[False]:.3f} s without, {total[True]:.3f} s"
          f" with consoles: a CPU-bound rate of {100 * total[False] / total[True]:5.1f}%;"
          f" the hub's own: {hub_cpu[False]:.3f} s / {hub_cpu[True]:.3f} s"
          f" = {100 * hub_cpu[False] / hub_cpu[True]:5.1f}%")  # fmt: skip
    return 0


def _cpu_line(c: dict[str, float]) -> str:
    return (f"hub loop {c['loop']:.3f} threads {c['threads']:.3f} workers {c['workers']:.3f}"
            f" | pushers {c['pushers']:.3f} | browser {c['browser']:.3f}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
