"""Flood benchmark: what hosts nobody approved can make a real hub keep (issue 8, finding 4).

Starts a ``c1hub serve`` process on 127.0.0.1 (default settings, or the ``--hub-arg``s given)
and, as an attacker on the room's LAN would:

- enrollment flood — N enrollment requests, each from a fresh key, K at a time;
- held flood       — D fresh keys that never enroll push R records each, in batches of B,
                     K at a time (their records are held: stored, not counted). A key stops at
                     its first refused batch, as a laptop's sync round does.

After each flood it prints what the hub kept: the pending devices, the records stored, the
size of hub.db (with its WAL), the size of the dashboard page, and the replies counted by
HTTP status and refusal code. Each flood runs on a fresh hub, first as the baseline with the
quotas lifted (``max_pending_devices`` and ``max_held_*`` set out of reach: what a hub kept
before it had quotas), then with the quotas as set. Everything stays on 127.0.0.1.

    .venv/bin/python bench/flood.py [--enrollments 20000] [--keys 60] [--records 6000]
                                    [--no-baseline] [--hub-arg=--max-held-records=1000 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import fresh_hub  # noqa: E402
from hub.protocol import codec, enroll, entry, record  # noqa: E402
from hub.protocol.identity import Identity  # noqa: E402
from hub.shared import generator  # noqa: E402

BIN = Path(sys.executable).parent
MSGPACK = {"Content-Type": "application/msgpack"}


async def figures(s: aiohttp.ClientSession, url: str, data: Path) -> dict[str, float]:
    async with s.get(url + "/metrics") as r:
        metrics = await r.text()
    async with s.get(url + "/?lang=en") as r:
        page = await r.read()

    def metric(pattern: str) -> int:
        m = re.search(pattern, metrics, re.M)
        return int(m.group(1)) if m else 0

    db = sum(p.stat().st_size for p in data.glob("hub.db*") if p.is_file())
    return {
        "pending devices": metric(r'^c1hub_devices\{state="pending"\} (\d+)$'),
        "records stored": metric(r"^c1hub_records_stored (\d+)$"),
        "hub.db + wal (MB)": db / 1e6,
        "dashboard (KB)": len(page) / 1e3,
    }


def show(title: str, counts: Counter[str], seconds: float, f: dict[str, float]) -> None:
    print(f"{title} ({seconds:.1f} s): " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for k, v in f.items():
        print(f"  {k:<20} {v:,.1f}" if isinstance(v, float) else f"  {k:<20} {v:,}")


async def enrollment_flood(url: str, n: int, k: int) -> tuple[Counter[str], float]:
    counts: Counter[str] = Counter()
    async with aiohttp.ClientSession() as s:
        async with s.get(url + "/v1/hello") as r:
            hub_public = codec.unpack(await r.read(), canonical=False)["public"]
        todo = iter(range(n))

        async def worker() -> None:
            for i in todo:
                req = enroll.make_request(Identity.generate(), hub_public, f"flood {i}",
                                          "laptop", 1_707_900_000)  # fmt: skip
                async with s.post(url + "/v1/enroll", data=req, headers=MSGPACK) as r:
                    body = codec.unpack(await r.read(), canonical=False)
                code = body["error"]["code"] if r.status != 200 else "ok"
                counts[f"{r.status} {code}"] += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(k)))
    return counts, time.perf_counter() - t0


def signed_logs(keys: int, records: int) -> list[list[bytes]]:
    """``keys`` logs of ``records`` validly signed records each (a few distinct bodies)."""
    import random

    rng = random.Random(4)
    bodies = [
        entry.encode_body(
            entry.parse(generator.make_form(rng, f"99010{i:05d}001", "PPWP", operator="Flood")),
            1_707_900_000,
        )
        for i in range(64)
    ]
    logs = []
    for _ in range(keys):
        ident, prev, raws = Identity.generate(), record.GENESIS, []
        for seq in range(1, records + 1):
            r = record.make(ident, seq, prev, bodies[seq % len(bodies)])
            prev = r.hash
            raws.append(r.raw)
        logs.append(raws)
    return logs


async def held_flood(
    url: str, logs: list[list[bytes]], batch: int, k: int
) -> tuple[Counter[str], float]:
    counts: Counter[str] = Counter()
    todo = iter(logs)
    async with aiohttp.ClientSession() as s:

        async def worker() -> None:
            for raws in todo:
                for i in range(0, len(raws), batch):
                    body = codec.pack({"records": raws[i : i + batch]})
                    async with s.post(url + "/v1/push", data=body, headers=MSGPACK) as r:
                        reply = codec.unpack(await r.read(), canonical=False)
                    if r.status != 200:
                        counts[f"{r.status} {reply['error']['code']}"] += 1
                        continue
                    counts["accepted"] += reply["accepted"]
                    counts["receipts"] += len(reply["receipts"])
                    for x in reply["rejected"]:
                        counts[f"rejected {x['code']}"] += 1
                    if reply["rejected"]:
                        counts["records not sent after a refusal"] += len(raws) - i - batch
                        break

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(k)))
    return counts, time.perf_counter() - t0


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--enrollments", type=int, default=20_000)
    ap.add_argument("--keys", type=int, default=60, help="keys in the held flood")
    ap.add_argument("--records", type=int, default=6000, help="records per key")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--hub-arg", action="append", default=[], help="extra c1hub serve argument")
    ap.add_argument("--no-baseline", action="store_true", help="skip the runs without quotas")
    a = ap.parse_args()
    print(f"signing {a.keys} x {a.records} records ...", flush=True)
    logs = signed_logs(a.keys, a.records)

    runs = [("with quotas", a.hub_arg)]
    if not a.no_baseline:
        runs.insert(0, ("baseline, quotas lifted", [*a.hub_arg, *NO_QUOTAS]))
    for label, args in runs:
        async with fresh_hub(*args) as (url, data):
            counts, secs = await enrollment_flood(url, a.enrollments, a.concurrency)
            async with aiohttp.ClientSession() as s:
                show(f"[{label}] {a.enrollments:,} enrollments of fresh keys", counts, secs,
                     await figures(s, url, data))  # fmt: skip
    for label, args in runs:
        async with fresh_hub(*args) as (url, data):
            counts, secs = await held_flood(url, logs, a.batch, a.concurrency)
            async with aiohttp.ClientSession() as s:
                show(f"[{label}] {a.keys} unknown keys push {a.records:,} records each", counts,
                     secs, await figures(s, url, data))  # fmt: skip


OUT_OF_REACH = str(2**62)
NO_QUOTAS = [flag for name in ("pending-devices", "held-records-per-device",
             "held-bytes-per-device", "held-records", "held-bytes")
             for flag in (f"--max-{name}", OUT_OF_REACH)]  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
