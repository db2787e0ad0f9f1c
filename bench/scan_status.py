"""Scan status benchmark: what one change costs the hub's ``scans`` status figures, kept
event by event (``hub.protocol.blobsync.ScanTally``, what ``hub/scans.py`` does) against
computing them from scratch after the change (``scan_counts`` + ``scan_pending`` over every
entry, what the hub did before). In-process, no I/O: the figures' own cost.

    .venv/bin/python bench/scan_status.py [--entries 100000] [--pages 2] [--changes 2000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hub.protocol import blobsync as bs


def page(i: int) -> str:
    return f"{i:064x}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--pages", type=int, default=2)
    ap.add_argument("--changes", type=int, default=2000)
    a = ap.parse_args()
    rng = random.Random(1)
    n, k = a.entries, a.pages
    entries = [(("pemilu-2024", "ppwp", f"{i:013d}"), tuple(page(i * k + j) for j in range(k)))
               for i in range(n)]  # fmt: skip
    t0 = time.perf_counter()
    tally = bs.ScanTally(root=False)
    for i, (key, scans) in enumerate(entries):
        tally.add(i % 50, i // 50 + 1, key, scans)
    build_s = time.perf_counter() - t0
    arrivals = rng.sample(range(n * k), min(a.changes, n * k))

    def figures_from_scratch() -> None:
        named = dict.fromkeys(h for _, scans in entries for h in scans)
        held = {h: b.size for h, b in tally.held.items()}
        bs.scan_counts(named, held, tally.upstream)
        bs.scan_pending(entries, held)

    scratch = []
    for i in arrivals[: max(1, a.changes // 100)]:  # slow: a few are enough
        tally.arrived(page(i), 1_000_000)
        t0 = time.perf_counter()
        figures_from_scratch()
        scratch.append(time.perf_counter() - t0)
    kept = []
    for i in arrivals[len(scratch) :]:
        t0 = time.perf_counter()
        tally.arrived(page(i), 1_000_000)
        tally.counts()
        tally.pending(100)
        kept.append(time.perf_counter() - t0)
    push = []
    for j in range(a.changes):
        scans = tuple(page(10**9 + j * k + x) for x in range(k))
        t0 = time.perf_counter()
        tally.add(99, j + 1, ("pemilu-2024", "dpr", f"{j:013d}"), scans)
        tally.counts()
        tally.pending(100)
        push.append(time.perf_counter() - t0)
    c = tally.counts()
    print(f"{n} entries x {k} pages ({c.expected} pages named, {c.held} held); "
          f"index built in {build_s:.2f} s (once, at start)")  # fmt: skip
    sm, km, pm = (statistics.median(x) * 1e6 for x in (scratch, kept, push))
    print(f"a page arrives, figures from scratch: {sm:10.0f} us  (median of {len(scratch)})")
    print(f"a page arrives, figures kept:         {km:10.1f} us  (median of {len(kept)}; "
          f"{sm / km:,.0f}x less)")  # fmt: skip
    print(f"an entry stored, figures kept:        {pm:10.1f} us  (median of {len(push)})")


if __name__ == "__main__":
    main()
