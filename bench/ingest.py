"""Ingest benchmark: signed entries from K laptops into a real hub over loopback.

Prints, for several runs (median shown):

- raw limit  — the same machine, same run: verify + durable batched insert in-process, no HTTP
               (hub.examine.examine_batch on the hub's two examine workers + HubStore.push,
               which commits with synchronous=FULL), same K concurrent streams and batches;
- http       — a real ``c1hub serve`` process on 127.0.0.1, K concurrent pushers in this
               process, batches of B: durable entries/s (every push answered only after its
               commit), p50/p99 push latency;
- ratio      — http / raw limit.

The laptops are enrolled and approved before timing starts, as in a room (``--held`` measures
entries from laptops nobody approved yet instead: stored and held). Records are signed before
timing starts. Everything stays on 127.0.0.1.

    .venv/bin/python bench/ingest.py [--entries 20000] [--laptops 4] [--batch 500] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hub.examine import examine_batch, make_pool, warm_pool  # noqa: E402
from hub.protocol import codec, enroll, entry, record  # noqa: E402
from hub.protocol.identity import Identity  # noqa: E402
from hub.shared import generator  # noqa: E402
from hub.store import HubStore  # noqa: E402

BIN = Path(sys.executable).parent


def make_logs(entries: int, laptops: int, seed: int = 1, *, return_idents: bool = False) -> Any:
    """Signed logs, one per laptop (and the laptops' identities if asked)."""
    per = generator.room_workload(
        entries, laptops, seed=seed, mistake_rate=0.15, double_rate=0.0, conflicts=0
    )
    logs, idents = [], []
    for forms in per:
        ident = Identity.generate()
        idents.append(ident)
        prev, raws = record.GENESIS, []
        for i, f in enumerate(forms):
            r = record.make(ident, i + 1, prev, entry.encode_body(entry.parse(f), 1_707_900_000))
            prev = r.hash
            raws.append(r.raw)
        logs.append(raws)
    return (logs, idents) if return_idents else logs


async def raw_limit(logs: list[list[bytes]], idents: list[Identity], batch: int) -> float:
    """Entries/s through verify + durable insert in-process: the same K concurrent streams
    and batches as over HTTP, the same worker processes and group-commit writer, no HTTP.
    The laptops in ``idents`` are approved first."""
    with tempfile.TemporaryDirectory() as d, make_pool(None) as pool:
        store = await HubStore.open(Path(d))
        for ident in idents:
            await store.enroll(ident.public, "bench", "laptop", 0)
            await store.approve(ident.public, 0)
        await warm_pool(pool)  # like a started hub: workers up before the first push

        async def stream(raws: list[bytes]) -> None:
            for i in range(0, len(raws), batch):
                checked = await examine_batch(pool, raws[i : i + batch], None)
                await store.push(checked, 0)

        try:
            t0 = time.perf_counter()
            await asyncio.gather(*(stream(raws) for raws in logs))
            elapsed = time.perf_counter() - t0
        finally:
            await store.close()
    return sum(map(len, logs)) / elapsed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(200):
            if proc.poll() is not None:
                raise RuntimeError("c1hub serve exited early")
            try:
                async with s.get(url + "/v1/hello") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("c1hub serve did not come up")


async def approve_over_http(url: str, data: Path, idents: list[Identity]) -> None:
    """Enroll each laptop at the hub and approve it with the admin token, as a room does."""
    token = (data / "admin.token").read_text().strip()
    async with aiohttp.ClientSession() as s:
        async with s.get(url + "/v1/hello") as r:
            hub_public = codec.unpack(await r.read(), canonical=False)["public"]
        for ident in idents:
            req = enroll.make_request(ident, hub_public, "bench", "laptop", 0)
            async with s.post(url + "/v1/enroll", data=req,
                              headers={"Content-Type": "application/msgpack"}) as r:  # fmt: skip
                assert r.status == 200, await r.read()
            async with s.post(f"{url}/v1/devices/{ident.node_id}/approve",
                              headers={"Authorization": f"Bearer {token}"}) as r:  # fmt: skip
                assert r.status == 200 and (await r.json())["state"] == "approved"


@contextlib.asynccontextmanager
async def fresh_hub(*args: str) -> AsyncIterator[tuple[str, Path]]:
    """A ``c1hub serve`` process (with ``args``) on a fresh data folder: (its URL, the folder),
    stopped at the end."""
    with tempfile.TemporaryDirectory() as d:
        data = Path(d) / "hub"
        subprocess.run([BIN / "c1hub", "init", "--data", data, "--name", "bench"], check=True,
                       capture_output=True)  # fmt: skip
        port = free_port()
        proc = subprocess.Popen(
            [BIN / "c1hub", "serve", "--data", data, "--host", "127.0.0.1",
             "--port", str(port), "--no-mdns", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            await wait_up(url, proc)
            yield url, data
        finally:
            proc.terminate()
            proc.wait(timeout=60)


async def over_http(
    logs: list[list[bytes]], idents: list[Identity], batch: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    async with fresh_hub() as (url, data):
        await approve_over_http(url, data, idents)
        await asyncio.sleep(1.0)  # let the hub's examine workers start (not part of ingest)

        async def pusher(raws: list[bytes]) -> None:
            async with aiohttp.ClientSession() as s:
                for i in range(0, len(raws), batch):
                    body = codec.pack({"records": raws[i : i + batch]})
                    t = time.perf_counter()
                    async with s.post(
                        url + "/v1/push",
                        data=body,
                        headers={"Content-Type": "application/msgpack"},
                    ) as r:
                        reply = codec.unpack(await r.read(), canonical=False)
                    latencies.append(time.perf_counter() - t)
                    if r.status != 200 or reply["rejected"]:
                        raise RuntimeError(f"push failed: {r.status} {reply}")

        t0 = time.perf_counter()
        await asyncio.gather(*(pusher(raws) for raws in logs))
        elapsed = time.perf_counter() - t0
    return sum(map(len, logs)) / elapsed, latencies


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--entries", type=int, default=20_000)
    ap.add_argument("--laptops", type=int, default=4)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--held", action="store_true",
                    help="laptops nobody approved: measure the held path instead")  # fmt: skip
    a = ap.parse_args()
    logging.getLogger("hub").setLevel(logging.ERROR)  # no "new laptop is pending" notes
    print(f"signing {a.entries} entries for {a.laptops} laptops ...", flush=True)
    logs, idents = make_logs(a.entries, a.laptops, return_idents=True)
    approved = [] if a.held else idents
    base, http, p50s, p99s = [], [], [], []
    for run in range(a.runs):
        b = await raw_limit(logs, approved, a.batch)
        h, lat = await over_http(logs, approved, a.batch)
        base.append(b)
        http.append(h)
        p50s.append(pct(lat, 50) * 1000)
        p99s.append(pct(lat, 99) * 1000)
        print(
            f"run {run + 1}: raw limit {b:8.0f}/s   http {h:8.0f}/s   ratio {h / b:5.2f}   "
            f"p50 {p50s[-1]:6.1f} ms   p99 {p99s[-1]:6.1f} ms",
            flush=True,
        )
    mb, mh = statistics.median(base), statistics.median(http)
    laptops = "pending laptops (held)" if a.held else "approved laptops"
    print(
        f"\nmedian of {a.runs} runs, {a.entries} entries, {a.laptops} {laptops}, "
        f"batch {a.batch}, {os.cpu_count()} cores:\n"
        f"  raw limit (verify + durable insert, no HTTP): {mb:8.0f} entries/s\n"
        f"  hub over HTTP (durable, receipts):            {mh:8.0f} entries/s\n"
        f"  ratio http / raw limit:                       {mh / mb:8.2f}\n"
        f"  push latency p50 / p99:                       {statistics.median(p50s):.1f} / "
        f"{statistics.median(p99s):.1f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
