"""The national read side at the whole country's size, without generating 4.1 M signed entries.

``results`` and the status counts of the PostgreSQL store read only the per-kecamatan and
per-kabupaten/kota aggregates (``kec_*``, ``kab_*``) and per-device counters, whose size is
set by the country's geography (38 provinces, ~514 kabupaten/kota, ~7,300 kecamatan) and the ballot
papers (candidates and parties per form), never by the number of entries. This benchmark fills
those tables at that size directly with SQL (one row per kecamatan, form, and candidate/party
or status/flag: ~570 k vote rows and ~520 k count rows, as after the whole country's 4.1 M
forms are in), plus ``--devices`` approved laptops, and times the read side the root's page and
``GET /v1/results`` use, and the device list: the status (counts and the first 100 devices),
one page of ``PAGE_MAX`` devices from the middle (``GET /v1/devices?limit=1000&after=ID``)
and every device at once (what the status listed before it was paged). ``bench/national.py``
measures the same calls on a database filled by real pushes; the two together bound the cost
at 1 M and 4.1 M.

    .venv/bin/python bench/national_reads.py [--devices 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hub.pg.store import PgStore  # noqa: E402
from hub.status import PAGE_MAX  # noqa: E402
from hub.storage import NodeInfo  # noqa: E402
from tests.servers.postgres import PostgresServer, find_bin_dir  # noqa: E402

ELECTION = "pemilu-2024"
# Numbers per form: PPWP 3 pairs; DPD ~20 candidates per province; DPR/DPRD 18 parties.
FORMS = "('PPWP', 3), ('DPR', 18), ('DPD', 20), ('DPRD_PROV', 18), ('DPRD_KABKO', 18)"
# 38 provinces x 14 kabupaten/kota x 14 kecamatan = 7,448 kecamatan
KEC = "generate_series(11, 48) p, generate_series(1, 14) k, generate_series(1, 14) c"
CODE = "lpad(p::text, 2, '0') || lpad(k::text, 2, '0') || lpad(c::text, 2, '0')"


async def fill(store: PgStore, devices: int) -> dict[str, int]:
    async with store.pool.acquire() as con:
        await con.execute(
            f"INSERT INTO kec_votes(election, form, kec, no, votes) SELECT '{ELECTION}', f.form,"
            f" {CODE}, n::text, (random() * 50000)::bigint FROM {KEC},"
            f" (VALUES {FORMS}) f(form, cnt), generate_series(1, f.cnt) n"
        )
        await con.execute(
            f"INSERT INTO kec_counts(election, form, kec, what, n) SELECT '{ELECTION}', f.form,"
            f" {CODE}, w, (random() * 100)::bigint FROM {KEC}, (VALUES {FORMS}) f(form, cnt),"
            " unnest(ARRAY['single', 'verified', 'conflict', 'R1', 'R2', 'R3', 'R4', 'R5',"
            " 'R6', 'R7', 'R8', 'R9', 'R10', 'R11']) w"
        )
        for what, col in (("votes", "no"), ("counts", "what")):
            v = "votes" if what == "votes" else "n"
            await con.execute(
                f"INSERT INTO kab_{what} SELECT election, form, substr(kec, 1, 4), {col},"
                f" sum({v}) FROM kec_{what} GROUP BY 1, 2, 3, 4"
            )  # what the ingest transactions keep per kabupaten/kota
        await con.execute(
            "INSERT INTO devices(public, node_id, name, state, first_seen, last_seen,"
            " head_seq, records) SELECT sha256(i::text::bytea), 'D' || i, 'L' || i,"
            " 'approved', 1, 1, 500, 500 FROM generate_series(1, $1) i",
            devices,
        )
        await con.execute("ANALYZE")
        return {
            t: int(await con.fetchval(f"SELECT count(*) FROM {t}"))
            for t in ("kec_votes", "kec_counts", "kab_votes", "kab_counts", "devices")
        }


@contextlib.asynccontextmanager
async def throwaway_store() -> AsyncIterator[PgStore]:
    """A ``PgStore`` on a throw-away PostgreSQL cluster (removed after)."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise SystemExit("PostgreSQL is not installed (apt-get install postgresql)")
    with PostgresServer(bin_dir, settings={"shared_buffers": "512MB"}) as pg:
        store = await PgStore.open(pg.dsn())
        try:
            yield store
        finally:
            await store.close()


async def main(devices: int) -> None:
    async with throwaway_store() as store:
        sizes = await fill(store, devices)
        node = NodeInfo("ROOT", "root", "root", bytes(32))
        calls = {
            "results national": lambda: store.results(ELECTION),
            "results province": lambda: store.results(ELECTION, "province", "31"),
            "results kabkota": lambda: store.results(ELECTION, "kabkota", "3107"),
            "status counts": store.status_counts,
            "status": lambda: store.status(node, 0.0),  # counts + the first 100 devices
            "device page": lambda: store.device_page(node.public, (1, "D5000"), PAGE_MAX),
            "every device": lambda: store.device_list(node.public),
        }
        print(", ".join(f"{k} {v:,} rows" for k, v in sizes.items()))
        for name, call in calls.items():
            times = []
            for _ in range(5):
                t = time.perf_counter()
                await call()
                times.append(time.perf_counter() - t)
            print(f"  {name:<18}{statistics.median(times) * 1000:>9.1f} ms (median of 5)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=20_000, help="approved laptops")
    asyncio.run(main(ap.parse_args().devices))
