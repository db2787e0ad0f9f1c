"""The PostgreSQL scan book (``hub.pg.scans``) at a national size, without sending the scans.

A root holding ``--entries`` entries of ``--pages`` pages each names that many scans; the
ingest trigger fills ``scans`` and ``scan_entries`` one row per page (and per page and entry).
This fills both tables directly with SQL at that size, ``--held`` of the scans held, and times
what the transfer endpoints and the status ask of the book: the lacking question (1,000
hashes), one held blob (``GET``/``HEAD``), marking a blob held, and the status summary (counts
and the entries whose scans are pending); then what the ingest trigger costs a push.

    .venv/bin/python bench/scanbook.py [--entries 1000000] [--pages 2] [--held 0.9] [--push N]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.national_reads import throwaway_store  # noqa: E402
from hub.pg.store import PgStore  # noqa: E402
from tests.pg.helpers import check, forms, ident, sign  # noqa: E402

FILL_TIMEOUT = 3600.0
HASH = "encode(sha256((e * 10 + p)::text::bytea), 'hex')"


async def fill(store: PgStore, entries: int, pages: int, held: float) -> dict[str, int]:
    """The tables as the ingest trigger and ``add_held`` leave them."""
    async with store.pool.acquire() as con:
        await con.execute(
            f"INSERT INTO scan_entries(scan, dev, seq) SELECT {HASH}, e % 1000 + 1,"
            " e / 1000 + 1 FROM generate_series(1, $1) e, generate_series(1, $2) p",
            entries, pages, timeout=FILL_TIMEOUT,
        )  # fmt: skip
        await con.execute(
            "INSERT INTO scans(hash, size, kind, held_at) SELECT scan, CASE WHEN random() < $1"
            " THEN 1500000 END, 'jpeg', 1 FROM scan_entries",
            held, timeout=FILL_TIMEOUT,
        )  # fmt: skip
        await con.execute(
            "UPDATE scans SET kind = NULL, held_at = NULL WHERE size IS NULL", timeout=FILL_TIMEOUT
        )
        await con.execute(
            "INSERT INTO scan_waiting(dev, seq, election, form, tps, missing)"
            " SELECT e.dev, e.seq, 'pemilu-2024', 'PPWP', lpad(e.dev::text, 13, '0'), count(*)"
            " FROM scan_entries e JOIN scans c ON c.hash = e.scan WHERE c.size IS NULL"
            " GROUP BY e.dev, e.seq",
            timeout=FILL_TIMEOUT,
        )
        await con.execute(
            "UPDATE scan_totals SET expected = (SELECT count(*) FROM scans),"
            " held = (SELECT count(size) FROM scans), held_bytes = (SELECT sum(size) FROM scans),"
            " waiting = (SELECT count(*) FROM scan_waiting) WHERE shard = 0",
            timeout=FILL_TIMEOUT,
        )
        for t in ("scans", "scan_entries", "scan_waiting"):
            await con.execute(f"VACUUM ANALYZE {t}", timeout=FILL_TIMEOUT)
        return {t: int(await con.fetchval(f"SELECT count(*) FROM {t}"))
                for t in ("scans", "scan_entries", "scan_waiting")}  # fmt: skip


async def ingest(store: PgStore, n: int) -> None:
    """Entries/s of ``push`` (batches of 1,000, examined beforehand) for entries naming two
    scans each and for entries naming none, on the same database: what the trigger costs."""
    for label, pages, who in (("no scans", 0, ident(901)), ("2 scans each", 2, ident(902))):
        bodies = forms(n, seed=pages + 7, region="98" if pages else "97")
        for i, body in enumerate(bodies):
            body["scans"] = [hashlib.sha256(b"%d/%d/%d" % (pages, i, p)).hexdigest()
                             for p in range(pages)]  # fmt: skip
        await store.enroll(who.public, label, "laptop", 1)
        await store.approve(who.public, 1, b"E")
        raws = sign(who, bodies)
        batches = [check(raws[k : k + 1000]) for k in range(0, n, 1000)]
        t = time.perf_counter()
        for b in batches:
            await store.push(b, 2)
        d = time.perf_counter() - t
        print(f"  push, {label:<14}{n / d:>10.0f} entries/s ({n:,} in batches of 1,000)")


async def timed(call: Callable[[], Awaitable[Any]], n: int = 5) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        await call()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


async def main(entries: int, pages: int, held: float, push: int) -> None:
    async with throwaway_store() as store:
        t0 = time.perf_counter()
        sizes = await fill(store, entries, pages, held)
        print(f"filled in {time.perf_counter() - t0:.0f} s: "
              + ", ".join(f"{k} {v:,} rows" for k, v in sizes.items()))  # fmt: skip
        async with store.pool.acquire() as con:
            some = [r[0] for r in await con.fetch(
                "SELECT hash FROM scans ORDER BY random() LIMIT 1000")]  # fmt: skip
            todo = [r[0] for r in await con.fetch(
                "SELECT hash FROM scans WHERE size IS NULL LIMIT 5")]  # fmt: skip
        book = store.scan_book
        marks = iter(todo)
        calls: dict[str, tuple[Callable[[], Awaitable[Any]], int]] = {
            "lacking (1,000 hashes)": (lambda: book.lookup(some), 5),
            "held (GET/HEAD)": (lambda: book.held(some[0]), 5),
            "add_held": (lambda: book.add_held(next(marks), 1, "jpeg", 2), 5),
            "summary (root)": (lambda: book.summary(None, 100), 3),
        }
        for name, (call, n) in calls.items():
            print(f"  {name:<24}{await timed(call, n) * 1000:>10.1f} ms (median of {n})")
        if push:
            await ingest(store, push)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--pages", type=int, default=2)
    ap.add_argument("--held", type=float, default=0.9, help="share of the scans held")
    ap.add_argument("--push", type=int, default=10_000, help="entries pushed per kind (0: none)")
    a = ap.parse_args()
    asyncio.run(main(a.entries, a.pages, a.held, a.push))
