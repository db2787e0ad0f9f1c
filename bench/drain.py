"""Drain benchmark: a room hub with a backlog of N entries forwards it to the root.

For each N (default 10,000 and 100,000), in one run:

- baseline — the root's own ingest rate from a single local pusher (``c1hub national``
             process, one aiohttp client, batches of 1000, durable, over loopback);
- drain    — a ``c1hub serve --upstream`` process holding N unforwarded entries drains to a
             fresh root: entries/s from the first entry arriving at the root to the last;
- memory   — the room hub's peak RSS (VmHWM) while draining, next to its peak RSS holding the
             same entries idle with no upstream: the difference is what the drain costs, and it
             must not grow with N.

Everything runs on 127.0.0.1; the roots use --approve-all (a test-only switch) so no one has
to approve the room hub by hand.

    .venv/bin/python bench/drain.py [--sizes 10000,100000] [--laptops 8]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import free_port, make_logs, wait_up  # noqa: E402
from hub.config import HubConfig  # noqa: E402
from hub.node import Hub, init_data_dir  # noqa: E402
from hub.protocol import codec, enroll  # noqa: E402
from hub.protocol.identity import Identity  # noqa: E402

BIN = Path(sys.executable).parent


def spawn(*args: str | Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [BIN / "c1hub", *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def vm_hwm_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(m.group(1)) / 1024 if m else float("nan")


async def stored(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url + "/metrics") as r:
        m = re.search(r"^c1hub_records_stored (\d+)$", await r.text(), re.M)
    return int(m.group(1)) if m else 0


async def build_room(data: Path, logs: list[list[bytes]], idents: list[Identity]) -> None:
    """A room hub holding every record of ``logs`` from approved laptops, nothing forwarded."""
    init_data_dir(data, "bench room")
    async with Hub(HubConfig(data_dir=data, host="127.0.0.1", port=0, mdns=False)) as node:
        hub = node.service
        for ident in idents:
            await hub.enroll(enroll.make_request(ident, hub.ident.public, "L", "laptop", 1))
            await hub.approve(ident.node_id)
        for raws in logs:
            for i in range(0, len(raws), 1000):
                await hub.push(raws[i : i + 1000])


async def root_baseline(logs: list[list[bytes]], idents: list[Identity], tmp: Path) -> float:
    data = tmp / "root-baseline"
    subprocess.run([BIN / "c1hub", "init", "--data", data, "--name", "root"], check=True,
                   capture_output=True)  # fmt: skip
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = spawn("national", "--data", data, "--host", "127.0.0.1", "--port", port,
                 "--no-mdns", "--approve-all")  # fmt: skip
    try:
        await wait_up(url, proc)
        async with aiohttp.ClientSession() as http:
            hello = codec.unpack(await (await http.get(url + "/v1/hello")).read(), canonical=False)
            for ident in idents:
                raw = enroll.make_request(ident, hello["public"], "L", "laptop", 1)
                await http.post(url + "/v1/enroll", data=raw,
                                headers={"Content-Type": "application/msgpack"})  # fmt: skip
            t0 = time.perf_counter()
            for raws in logs:
                for i in range(0, len(raws), 1000):
                    async with http.post(
                        url + "/v1/push",
                        data=codec.pack({"records": raws[i : i + 1000]}),
                        headers={"Content-Type": "application/msgpack"},
                    ) as r:
                        reply = codec.unpack(await r.read(), canonical=False)
                        assert r.status == 200 and not reply["rejected"], reply
            return sum(map(len, logs)) / (time.perf_counter() - t0)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def idle_peak(room: Path) -> float:
    port = free_port()
    proc = spawn("serve", "--data", room, "--host", "127.0.0.1", "--port", port, "--no-mdns")
    try:
        await wait_up(f"http://127.0.0.1:{port}", proc)
        await asyncio.sleep(1.0)
        return vm_hwm_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def drain(room: Path, n: int, tmp: Path) -> tuple[float, float]:
    data = tmp / f"root-drain-{n}"
    subprocess.run([BIN / "c1hub", "init", "--data", data, "--name", "root"], check=True,
                   capture_output=True)  # fmt: skip
    rport, hport = free_port(), free_port()
    rurl = f"http://127.0.0.1:{rport}"
    root = spawn("national", "--data", data, "--host", "127.0.0.1", "--port", rport,
                 "--no-mdns", "--approve-all")  # fmt: skip
    hub = None
    try:
        await wait_up(rurl, root)
        hub = spawn("serve", "--data", room, "--host", "127.0.0.1", "--port", hport,
                    "--no-mdns", "--upstream", rurl)  # fmt: skip
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 1800
            t_first = None
            while True:
                got = await stored(http, rurl)
                if got and t_first is None:
                    t_first, first = time.perf_counter(), got
                if got >= n:
                    break
                if time.monotonic() > deadline or hub.poll() is not None:
                    raise RuntimeError(f"drain stalled at {got} of {n}")
                await asyncio.sleep(0.02)
            assert t_first is not None
            rate = (n - first) / max(time.perf_counter() - t_first, 1e-9)
        return rate, vm_hwm_mb(hub.pid)
    finally:
        for p in (hub, root):
            if p is not None:
                p.terminate()
                p.wait(timeout=30)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--laptops", type=int, default=8)
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for n in (int(x) for x in a.sizes.split(",")):
            print(f"N={n}: signing and loading the room hub ...", flush=True)
            logs, idents = make_logs(n, a.laptops, return_idents=True)
            room = tmp / f"room-{n}"
            await build_room(room, logs, idents)
            base = await root_baseline(logs, idents, tmp)
            idle = await idle_peak(room)
            rate, peak = await drain(room, n, tmp)
            rows.append((n, base, rate, idle, peak))
            print(f"N={n}: baseline {base:.0f}/s, drain {rate:.0f}/s ({rate / base:.2f}), "
                  f"idle peak {idle:.0f} MB, draining peak {peak:.0f} MB", flush=True)  # fmt: skip
    print("\n       N   root ingest (1 pusher)   drain to root   ratio   hub peak RSS idle"
          " -> draining (drain cost)")  # fmt: skip
    for n, base, rate, idle, peak in rows:
        print(f"{n:8d}   {base:14.0f}/s        {rate:9.0f}/s   {rate / base:5.2f}"
              f"   {idle:6.0f} MB -> {peak:6.0f} MB ({peak - idle:+.0f} MB)")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
