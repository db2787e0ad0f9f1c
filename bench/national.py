"""National benchmark: many hubs pushing into the root's PostgreSQL store through 1 and 2
receiver processes, next to the SQLite root, in one run.

Signed entries are generated directly (``hub.protocol`` + ``hub.shared.generator``, not via
laptops): ``--hubs`` hubs, each forwarding the logs of its own laptops (about 500 entries per
laptop, every TPS with its five ballot types, 10% typed twice), TPS codes spread over as many
provinces as hubs. They are made and kept in ``--cache`` in units of 25 laptops (12,500
entries, signed and, with ``--examine before``, examined), each unit written whole or not at
all and depending only on its hub, its place and its size: a run reuses every unit already
made, by it or by a smaller run (the 100 k set is the first unit of each hub of the 1 M set),
and a run stopped midway goes on from the units it finished (generation is ~2,300 entries/s
per core on an idle machine, examining ~4,000).

Each receiver is a process with its own store behind ``hub.storage.HubStorage`` (for
PostgreSQL its own ``PgStore`` and connection pool) serving some of the hubs; each hub is one
task pushing batches of ``--batch`` records one after the other, as a hub's forwarder does.
Receivers call the store as the hub service does, without HTTP (docs/scaling.md says what HTTP
adds). Two modes:

- ``--examine before`` (default): the batches are examined (decoded, verified, checked) once
  per size, before any clock starts, and cached on disk next to the signed ones; receivers
  stream them from there, so entries/s is what the store and PostgreSQL sustain and memory
  holds one batch per hub at a time;
- ``--examine inline``: each batch is examined when it is pushed, on a pool of 2 worker
  processes per receiver (a receiver's real work; CPU-bound on these 2 cores).

Printed per run: entries/s, the receivers' RSS when the clock starts, after the first 100k
entries a receiver took, and at the end (and on stderr every 100k entries while it runs;
goal: flat within 20% from 100k to 1M on PostgreSQL), transaction retries, and then the read
side measured by the first receiver on its loaded store: ``results`` (national, one province,
one kabupaten/kota) and ``status`` (goal: results < 1 s at 1M). The baseline in the same
run is the SQLite root (``HubStore``, one process, group commit, every entry's facts in
memory) taking the same batches. PostgreSQL is a throw-away cluster started by the benchmark
(durable: fsync and synchronous_commit on) unless ``--dsn`` names one.

    .venv/bin/python bench/national.py [--entries 100000] [--hubs 8] [--receivers 1,2]
    .venv/bin/python bench/national.py --entries 1000000 --receivers 1      # 1M option
    .venv/bin/python bench/national.py --entries 4100000 --receivers 2      # the country
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import multiprocessing
import pickle
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hub.protocol import entry, record  # noqa: E402
from hub.protocol.identity import Identity  # noqa: E402
from hub.shared import generator  # noqa: E402
from hub.storage import HubStorage  # noqa: E402

FORMS = ("PPWP", "DPR", "DPD", "DPRD_PROV", "DPRD_KABKO")
PER_LAPTOP = 500
ENTERED_AT = 1_707_900_000


def laptop_ident(hub: int, i: int) -> Identity:
    return Identity.from_seed(f"bench-national/{hub}/{i}".encode().ljust(32, b".")[:32])


# -- generation (worker processes) ----------------------------------------------------------


GROUP = 25  # laptops per generated unit (12,500 entries): what is cached, reused and resumed
CODES_PER_GROUP = 20_000  # TPS codes set aside per unit (a unit uses ~2,300)


@dataclasses.dataclass(frozen=True)
class Unit:
    """One cached unit of a hub's share: laptops ``first`` .. ``first + laptops - 1`` of hub
    ``hub`` and ``count`` entries over them. Its content depends only on these fields, so a
    bigger run reuses the units a smaller one made (hub h's first unit is the same at 100 k and
    at 1 M), and a run stopped midway starts again after the last unit it finished."""

    hub: int
    group: int
    first: int
    laptops: int
    count: int
    batch: int

    def path(self, cache: Path) -> Path:
        return cache / (f"u-h{self.hub}-g{self.group}-l{self.laptops}-n{self.count}"
                        f"-b{self.batch}.msgpack")  # fmt: skip


def units_of(hub: int, count: int, batch: int) -> list[Unit]:
    """A hub's ``count`` entries over ``count // PER_LAPTOP`` laptops, in units of ``GROUP``
    laptops (the last unit takes the remainder)."""
    laptops = max(1, count // PER_LAPTOP)
    out: list[Unit] = []
    for g, first in enumerate(range(0, laptops, GROUP)):
        n = min(GROUP, laptops - first)
        last = first + n >= laptops
        share = count - first * PER_LAPTOP if last else n * PER_LAPTOP
        out.append(Unit(hub, g, first, n, share, batch))
    return out


def unit_codes(hub: int, group: int) -> Iterator[str]:
    """Distinct synthetic TPS codes of one unit (``generator.tps_codes``' layout), in the
    hub's province, from a range no other unit of the hub uses."""
    province, n = f"{11 + hub % 80:02d}", group * CODES_PER_GROUP
    while True:
        kab, kec, desa, t = n // 200_000 + 1, n // 20_000 % 10 + 1, n // 20 % 1000 + 1, n % 20 + 1
        yield f"{province}{kab:02d}{kec:02d}{desa:04d}{t:03d}"
        n += 1


def generate_unit(args: tuple[Unit, Path]) -> Path:
    """One unit: its laptops' logs, interleaved into batches, written as a msgpack stream of
    batches (lists of raw records); the file appears whole (renamed) or not at all."""
    u, out = args
    rng = random.Random(f"{u.hub}/{u.group}")
    codes = unit_codes(u.hub, u.group)
    bodies: list[list[dict[str, Any]]] = [[] for _ in range(u.laptops)]
    made = 0
    while made < u.count:
        tps = next(codes)
        voters = random.Random(tps)
        for form in FORMS:
            if made >= u.count:
                break
            i = rng.randrange(u.laptops)
            op = f"Op {u.first + i}"
            f = generator.make_form(rng, tps, form, operator=op, voters_rng=voters)
            bodies[i].append(f)
            made += 1
            if u.laptops > 1 and made < u.count and rng.random() < 0.1:  # typed twice
                j = (i + 1 + rng.randrange(u.laptops - 1)) % u.laptops
                bodies[j].append(dict(f, operator=f"Op {u.first + j}"))
                made += 1
    logs: list[list[bytes]] = []
    for i, bs in enumerate(bodies):
        ident, prev, raws = laptop_ident(u.hub, u.first + i), record.GENESIS, []
        for seq, b in enumerate(bs, 1):
            r = record.make(ident, seq, prev, entry.encode_body(entry.parse(b), ENTERED_AT))
            raws.append(r.raw)
            prev = r.hash
        logs.append(raws)
    # Interleave: each batch takes the next records of every laptop, in seq order.
    per = max(1, u.batch // u.laptops)
    tmp = out.with_suffix(".part")
    with open(tmp, "wb") as f:
        pos = [0] * len(logs)
        cur: list[bytes] = []
        while any(p < len(lg) for p, lg in zip(pos, logs, strict=True)):
            for i, lg in enumerate(logs):
                cur.extend(lg[pos[i] : pos[i] + per])
                pos[i] += per
            while len(cur) >= u.batch:
                f.write(msgpack.packb(cur[: u.batch]))
                cur = cur[u.batch :]
        if cur:
            f.write(msgpack.packb(cur))
    tmp.rename(out)
    return out


def examine_file(path: Path) -> Path:
    """The examined batches of one unit's file, pickled one batch after the other."""
    from hub.examine import examine

    out = path.with_suffix(".checked")
    tmp = out.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        for b in batches(path):
            pickle.dump([examine(i, r, None) for i, r in enumerate(b)], f, protocol=5)
    tmp.replace(out)
    return out


def make_unit(args: tuple[Unit, Path, bool]) -> Path:
    """Generate a unit if it is not cached, then examine it if asked and not cached."""
    u, out, examined = args
    if not out.exists():
        generate_unit((u, out))
    if examined and not out.with_suffix(".checked").exists():
        examine_file(out)
    return out


def hub_files(entries: int, hubs: int, batch: int, cache: Path, examined: bool) -> list[list[Path]]:
    """Per hub, its units' files in order: those missing (not generated, or not examined
    when ``examined``) are made on 2 worker processes, unit by unit."""
    cache.mkdir(parents=True, exist_ok=True)
    units = [units_of(h, entries // hubs, batch) for h in range(hubs)]
    files = [[u.path(cache) for u in us] for us in units]
    todo = [(u, u.path(cache), examined) for us in units for u in us
            if not u.path(cache).exists()
            or (examined and not u.path(cache).with_suffix(".checked").exists())]  # fmt: skip
    total = sum(len(us) for us in units)
    if todo:
        print(f"{total - len(todo)} of {total} units of {GROUP} laptops cached in {cache}; "
              f"making {len(todo)} ({sum(t[0].count for t in todo):,} entries) ...",
              flush=True)  # fmt: skip
        t = time.perf_counter()
        with multiprocessing.get_context("forkserver").Pool(2) as pool:
            for k, _ in enumerate(pool.imap_unordered(make_unit, todo), 1):
                print(f"  {k}/{len(todo)} units made, {time.perf_counter() - t:.0f} s",
                      file=sys.stderr, flush=True)  # fmt: skip
        print(f"  made in {time.perf_counter() - t:.0f} s", flush=True)
    else:
        print(f"all {total} units cached in {cache}", flush=True)
    return files


def checked_batches(path: Path) -> Iterator[list[Any]]:
    with open(path, "rb") as f:
        while True:
            try:
                yield pickle.load(f)
            except EOFError:
                return


def batches(path: Path) -> Iterator[list[bytes]]:
    with open(path, "rb") as f:
        yield from msgpack.Unpacker(f, raw=False, max_buffer_size=256 * 1024 * 1024)


def rss_mb() -> tuple[float, float]:
    text = Path("/proc/self/status").read_text()
    vals = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            vals[k] = int(v.split()[0]) / 1024
    return vals["VmRSS"], vals["VmHWM"]


# -- a receiver process ------------------------------------------------------------------------


async def receiver(opts: argparse.Namespace) -> None:
    from hub.examine import examine_batch, make_pool

    files = [[Path(p) for p in hub.split("+")] for hub in opts.files.split(",")]  # units
    now = int(time.time())
    store: HubStorage
    if opts.sqlite:
        from hub.store import HubStore

        store = await HubStore.open(Path(opts.sqlite))
    else:
        from hub.pg.store import PgStore

        store = await PgStore.open(opts.dsn, max_size=len(files) + 2)
    for h in opts.hub_ids.split(","):
        for i in range(opts.laptops):
            ident = laptop_ident(int(h), i)
            await store.enroll(ident.public, f"L{i}", "laptop", now)
            await store.approve(ident.public, now)
    pool = make_pool(None, "processes", 2) if opts.examine == "inline" else None
    rss0, _ = rss_mb()
    print("READY", flush=True)
    sys.stdin.readline()
    n = 0
    rss_100k: float | None = None
    rss_every: list[tuple[int, float]] = []  # (entries taken, RSS MB) every 100k entries

    async def hub_task(k: int) -> None:
        nonlocal n, rss_100k
        source: Iterator[Any]
        if pool is None:
            source = (b for u in files[k] for b in checked_batches(u.with_suffix(".checked")))
        else:
            source = (b for u in files[k] for b in batches(u))
        for b in source:
            checked = b if pool is None else await examine_batch(pool, b, None)
            await store.push(checked, now)
            n += len(checked)
            if rss_100k is None and n >= 100_000:
                rss_100k = rss_mb()[0]
            if n >= 100_000 * (len(rss_every) + 1):  # progress on stderr, as it goes
                rss_every.append((n, rss_mb()[0]))
                print(
                    f"  receiver {opts.hub_ids}: {n:,} entries, RSS {rss_every[-1][1]:.0f} MB, "
                    f"{n / (time.time() - t0):,.0f} entries/s",
                    file=sys.stderr,
                    flush=True,
                )

    t0 = time.time()
    await asyncio.gather(*(hub_task(k) for k in range(len(files))))
    t1 = time.time()
    rss1, hwm = rss_mb()
    reads = await read_side(store) if opts.reads else {}
    retries = getattr(store, "retries", 0)
    await store.close()
    if pool is not None:
        pool.shutdown()
    print("DONE " + json.dumps({"entries": n, "t0": t0, "t1": t1, "rss_start": rss0,
                                "rss_100k": rss_100k, "rss_end": rss1, "hwm": hwm,
                                "rss_every": rss_every,
                                "retries": retries, "reads": reads}),
          flush=True)  # fmt: skip


async def read_side(store: HubStorage) -> dict[str, float]:
    """Median times of the read side on a loaded store (any ``HubStorage``)."""
    from hub.storage import NodeInfo

    node = NodeInfo("BENCH", "bench", "root", bytes(32))
    national = await store.results(generator.ELECTION)
    prov = sorted(national["forms"]["PPWP"]["children"])[0]
    province = await store.results(generator.ELECTION, "province", prov)
    kab = sorted(province["forms"]["PPWP"]["children"])[0]
    out: dict[str, float] = {}
    for name, call in (
        ("results national", lambda: store.results(generator.ELECTION)),
        ("results province", lambda: store.results(generator.ELECTION, "province", prov)),
        ("results kabkota", lambda: store.results(generator.ELECTION, "kabkota", kab)),
        ("status", lambda: store.status(node, 0.0)),
    ):
        times = []
        for _ in range(3):
            t = time.perf_counter()
            await call()
            times.append(time.perf_counter() - t)
        out[name] = statistics.median(times)
    s = await store.status(node, 0.0)
    out["_tps"] = sum(s["tps"].values())
    out["_verified"] = s["tps"]["verified"]
    return out


# -- the run -----------------------------------------------------------------------------------


def run_receivers(
    files: list[list[Path]], n: int, opts: argparse.Namespace, *, dsn: str = "", sqlite: str = ""
) -> dict[str, Any]:
    procs = []
    laptops = max(1, opts.entries // opts.hubs // PER_LAPTOP)
    for r in range(n):
        mine = [h for h in range(len(files)) if h % n == r]
        args = [sys.executable, __file__, "--role", "receiver", "--examine", opts.examine,
                "--files", ",".join("+".join(map(str, files[h])) for h in mine),
                "--hub-ids", ",".join(map(str, mine)), "--laptops", str(laptops)]  # fmt: skip
        args += ["--sqlite", sqlite] if sqlite else ["--dsn", dsn]
        args += ["--reads"] if r == 0 else []
        procs.append(subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True))  # fmt: skip
    for p in procs:
        assert p.stdout is not None
        line = p.stdout.readline()
        if line.strip() != "READY":
            raise SystemExit(f"a receiver did not start: {line!r}")
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("GO\n")
        p.stdin.flush()
    done = []
    for p in procs:
        assert p.stdout is not None
        line = p.stdout.readline()
        if not line.startswith("DONE "):
            raise SystemExit(f"a receiver failed: {line!r}")
        done.append(json.loads(line[5:]))
        p.wait()
    t0, t1 = min(d["t0"] for d in done), max(d["t1"] for d in done)
    total = sum(d["entries"] for d in done)
    return {"entries": total, "seconds": t1 - t0, "rate": total / (t1 - t0), "procs": done}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--hubs", type=int, default=8)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--receivers", default="1,2", help="receiver counts to run, e.g. 1,2")
    ap.add_argument("--examine", choices=("before", "inline"), default="before")
    ap.add_argument("--no-sqlite", action="store_true", help="skip the SQLite root baseline")
    ap.add_argument("--dsn", default="", help="an existing PostgreSQL (default: start one)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "c1hub-bench")
    ap.add_argument("--role", default="main", help=argparse.SUPPRESS)
    ap.add_argument("--files", help=argparse.SUPPRESS)
    ap.add_argument("--hub-ids", help=argparse.SUPPRESS)
    ap.add_argument("--laptops", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--sqlite", default="", help=argparse.SUPPRESS)
    ap.add_argument("--reads", action="store_true", help=argparse.SUPPRESS)
    opts = ap.parse_args()
    if opts.role == "receiver":
        asyncio.run(receiver(opts))
        return

    from tests.servers.postgres import PostgresServer, find_bin_dir

    files = hub_files(opts.entries, opts.hubs, opts.batch, opts.cache, opts.examine == "before")
    rows: list[tuple[str, dict[str, Any]]] = []
    server: PostgresServer | None = None
    try:
        if not opts.dsn:
            bin_dir = find_bin_dir()
            if bin_dir is None:
                raise SystemExit("PostgreSQL is not installed (apt-get install postgresql)")
            server = PostgresServer(bin_dir, settings={
                "shared_buffers": "512MB", "max_wal_size": "4GB", "checkpoint_timeout": "15min",
                "max_connections": "60", "fsync": "on", "synchronous_commit": "on",
            }).__enter__()  # fmt: skip
        for n in [int(x) for x in opts.receivers.split(",")]:
            dsn = server.dsn(server.new_database()) if server is not None else opts.dsn
            print(f"{n} receiver(s) -> PostgreSQL ...", flush=True)
            rows.append((f"PostgreSQL, {n} receiver(s)", run_receivers(files, n, opts, dsn=dsn)))
        if not opts.no_sqlite:
            with tempfile.TemporaryDirectory() as d:
                print("1 process -> SQLite root (baseline) ...", flush=True)
                rows.append(("SQLite root, 1 process (baseline)",
                             run_receivers(files, 1, opts, sqlite=d)))  # fmt: skip
    finally:
        if server is not None:
            server.close()

    print(f"\n{opts.entries:,} entries, {opts.hubs} hubs, batches of {opts.batch}, "
          f"examine {opts.examine}\n")  # fmt: skip
    print(f"{'store':<36}{'entries/s':>11}{'seconds':>9}{'RSS start':>11}{'RSS@100k':>10}"
          f"{'RSS end':>9}{'retries':>9}")  # fmt: skip
    for name, r in rows:
        ps = r["procs"]
        rss = [max(p[k] or 0 for p in ps) for k in ("rss_start", "rss_100k", "rss_end")]
        print(f"{name:<36}{r['rate']:>11,.0f}{r['seconds']:>9.1f}{rss[0]:>9.0f}MB{rss[1]:>8.0f}MB"
              f"{rss[2]:>7.0f}MB{sum(p['retries'] for p in ps):>9}")  # fmt: skip
    for name, r in rows:
        rd = r["procs"][0]["reads"]
        print(f"\nread side, {name}: {rd['_tps']:,} (election, form, TPS) keys, "
              f"{rd['_verified']:,} verified")  # fmt: skip
        for k, v in rd.items():
            if not k.startswith("_"):
                print(f"  {k:<20}{v * 1000:>10.1f} ms (median of 3)")


if __name__ == "__main__":
    main()
