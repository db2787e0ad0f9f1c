"""Scans benchmark: N page images of 1 MB, laptop -> hub -> root, against a raw socket copy of
the same bytes in the same run (docs/operations.md "Scans").

In one run, on 127.0.0.1, as real processes:

- raw          the same N files sent one after another over one TCP connection to a receiver
               that writes each to a temporary file, fsyncs it, renames it into place and
               fsyncs the folder, then acknowledges it (what a durable, one-at-a-time copy
               costs here, with no protocol at all);
- laptop->hub  ``c1client sync --once``: its entries, then its scans (chunks of 1 MiB, each
               fsynced before its answer, each scan's hash checked before it exists); then
               the same laptop (a copy) and another hub: a round with the entries only, and
               a timed round with the scans only (what the transfer itself costs, with one
               process start and hello), against a raw copy timed just before it (on a
               loaded machine the load moves between the first raw copy and that round);
- hub->root    the hub restarted with ``--upstream`` (and ``--upstream-lanes`` 2, the default,
               and 8, for an upstream on a fast local network): from then until the root
               holds every scan (entries first, then scans);
- interrupted  a second hub and root with the fault proxy between them cutting uploads
               mid-body and resetting connections: bytes sent through the proxy against the
               scans' bytes (what interruptions cost: at most one chunk each).

    .venv/bin/python bench/scans.py [--blobs 500] [--size 1000000] [--no-faults] [--rounds N]
        [--lanes 2,8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.procs import (  # noqa: E402
    C1CLIENT,
    FaultProxyProc,
    HubProc,
    get_json,
    run,
    run_json,
    terminate,
    wait_for,
)


def make_pages(folder: Path, n: int, size: int, seed: int) -> list[Path]:
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    out = []
    for i in range(n):
        p = folder / f"page{i:04d}.jpg"
        p.write_bytes(b"\xff\xd8\xff\xe0" + rng.randbytes(size - 6) + b"\xff\xd9")
        out.append(p)
    return out


def enter_forms(laptop: Path, pages: list[Path]) -> None:
    out = run(C1CLIENT, "generate", "--count", str(len(pages) // 2), "--seed", "5").stdout
    lines = []
    for i, line in enumerate(x for x in out.splitlines() if x.strip()):
        form = json.loads(line)
        form["scans"] = [str(pages[2 * i]), str(pages[2 * i + 1])]
        lines.append(json.dumps(form))
    run(C1CLIENT, "enter", "--data", laptop, "-", input="\n".join(lines) + "\n")


# -- raw baseline ---------------------------------------------------------------------------


async def raw_copy(files: list[Path], dest: Path) -> float:
    """Seconds to send ``files`` over one loopback connection to a durable receiver."""
    dest.mkdir()

    async def receive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        i = 0
        while True:
            n = int.from_bytes(await reader.readexactly(8), "big")
            if n == 0:
                break
            tmp, final = dest / f"{i}.part", dest / f"{i}.blob"
            with open(tmp, "wb") as f:
                left = n
                while left:
                    chunk = await reader.read(min(left, 1 << 20))
                    f.write(chunk)
                    left -= len(chunk)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
            fd = os.open(dest, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
            writer.write(b"k")
            await writer.drain()
            i += 1
        writer.close()

    server = await asyncio.start_server(receive, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for p in files:
        data = p.read_bytes()
        writer.write(len(data).to_bytes(8, "big") + data)
        await writer.drain()
        await reader.readexactly(1)
    took = time.perf_counter() - t0
    writer.write((0).to_bytes(8, "big"))
    await writer.drain()
    await reader.read()  # the receiver closes its side when done
    writer.close()
    server.close()
    await server.wait_closed()
    return took


# -- the real thing -------------------------------------------------------------------------


def held(node: HubProc) -> int:
    return int(get_json(node.url + "/v1/status")["scans"]["held"])


def held_over(node: HubProc, k: int) -> bool:
    return held(node) > k


def _cpu(node: HubProc) -> float:
    """CPU seconds (user + system) the hub process has used so far."""
    assert node.proc is not None
    fields = Path(f"/proc/{node.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    """CPU seconds of the finished child processes (the c1client runs)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _link_blobs(src: str, dst: str) -> None:
    """Copy a laptop's folder with its (immutable) blobs as hard links."""
    if f"{os.sep}blobs{os.sep}" in src:
        os.link(src, dst)
    else:
        shutil.copy2(src, dst)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blobs", type=int, default=500)
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--no-faults", action="store_true")
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="scans-only rounds laptop -> hub, and hub -> root rounds (each against a raw copy "
        "just before it; medians)",
    )
    ap.add_argument(
        "--lanes",
        default="2,8",
        help="the hub's --upstream-lanes for the hub -> root rounds, comma-separated "
        "(2 is the default; 8 for an upstream on a fast local network)",
    )
    a = ap.parse_args()
    a.lanes = [int(x) for x in a.lanes.split(",")]
    n, size = a.blobs - a.blobs % 2, a.size
    mb = n * size / 1e6
    tmp = Path(tempfile.mkdtemp(prefix="c1bench-scans-"))
    procs: list[HubProc | FaultProxyProc] = []
    try:
        pages = make_pages(tmp / "scanner", n, size, seed=1)
        raw_s = asyncio.run(raw_copy(pages, tmp / "raw"))
        print(f"{n} scans of {size} bytes ({mb:.0f} MB)")
        print(f"raw socket copy (fsync each):  {raw_s:7.2f} s  {mb / raw_s:7.1f} MB/s  (baseline)")

        laptop = tmp / "laptop"
        run(C1CLIENT, "init", "--data", laptop, "--name", "bench")
        enter_forms(laptop, pages)
        twin = tmp / "laptop-twin"  # the same laptop, for the scans-only figure
        shutil.copytree(laptop, twin)
        if a.rounds > 1:
            shutil.copytree(laptop, tmp / "laptop-twin0", copy_function=_link_blobs)
        root = HubProc(tmp / "root", national=True, extra=("--approve-all",))
        hub = HubProc(tmp / "hub", extra=("--approve-all",))
        hub_b = HubProc(tmp / "hub-b", extra=("--approve-all",))
        procs += [root.start(), hub.start(), hub_b.start()]

        t0 = time.perf_counter()
        rep = run_json(C1CLIENT, "sync", "--data", laptop, "--hub", hub.url, "--once")
        up_s = time.perf_counter() - t0
        assert rep["scans"]["sent"] == n, rep["scans"]
        print(f"laptop -> hub (c1client sync): {up_s:7.2f} s  {mb / up_s:7.1f} MB/s  "
              f"({mb / up_s / (mb / raw_s):.0%} of raw; one process: entries, scans)")  # fmt: skip

        # the scans alone: the entries first (the pages held back), then a timed round
        ratios: list[float] = []  # the transfer, as c1client times it
        whole: list[float] = []  # the command, with its process start and hello
        cpu: list[tuple[float, float, float]] = []
        for r in range(a.rounds):
            if r:  # a fresh hub and laptop for each further round (the pages linked)
                hub_b = HubProc(tmp / f"hub-b{r}", extra=("--approve-all",))
                procs.append(hub_b.start())
                twin = tmp / f"laptop-twin{r}"
                shutil.copytree(tmp / "laptop-twin0", twin, copy_function=_link_blobs)
            (twin / "blobs").rename(twin / "blobs-away")
            t0 = time.perf_counter()
            run_json(C1CLIENT, "sync", "--data", twin, "--hub", hub_b.url, "--once")
            ent_s = time.perf_counter() - t0
            (twin / "blobs-away").rename(twin / "blobs")
            c0 = time.process_time()
            raw2_s = asyncio.run(raw_copy(pages, tmp / f"raw2-{r}"))  # the load of the moment
            raw_cpu = time.process_time() - c0
            shutil.rmtree(tmp / f"raw2-{r}")
            h0, k0 = _cpu(hub_b), _children_cpu()
            t0 = time.perf_counter()
            rep = run_json(C1CLIENT, "sync", "--data", twin, "--hub", hub_b.url, "--once")
            sc_s = time.perf_counter() - t0
            hub_cpu, cli_cpu = _cpu(hub_b) - h0, _children_cpu() - k0
            cpu.append((raw_cpu, hub_cpu, cli_cpu))
            assert rep["scans"]["sent"] == n and rep["pushed"] == 0, rep
            tr_s = rep["scans"]["seconds"]
            ratios.append(raw2_s / tr_s)
            whole.append(raw2_s / sc_s)
            print(f"  of which the scans:          {tr_s:7.2f} s  {mb / tr_s:7.1f} MB/s  "
                  f"({raw2_s / tr_s:.0%} of a raw copy just before: {raw2_s:.2f} s, "
                  f"{mb / raw2_s:.0f} MB/s; the command: {sc_s:.2f} s, {raw2_s / sc_s:.0%}; "
                  f"the entries' round: {ent_s:.2f} s)")  # fmt: skip
            if r:
                hub_b.stop()
                procs.remove(hub_b)
                shutil.rmtree(hub_b.data)
                shutil.rmtree(twin)
        if a.rounds > 1:
            print(f"  scans-only rounds: median {statistics.median(ratios):.0%} of raw "
                  f"({', '.join(f'{x:.0%}' for x in ratios)}); the whole command "
                  f"{statistics.median(whole):.0%}")  # fmt: skip
        rc, hc, cc = (statistics.median(x[i] for x in cpu) for i in range(3))
        print(f"  CPU for the {mb:.0f} MB (median): raw copy {rc:.2f} s (both ends, one "
              f"process); scans: hub {hc:.2f} s + c1client {cc:.2f} s (with its start)"
              )  # fmt: skip

        fwd: dict[int, list[float]] = {lanes: [] for lanes in a.lanes}
        hub.stop()
        if a.rounds * len(a.lanes) > 1:  # the hub as it is now (no upstream yet), to copy
            shutil.copytree(hub.data, tmp / "hub-snap", copy_function=_link_blobs)
        runs = [lanes for _ in range(a.rounds) for lanes in a.lanes]
        for r, lanes in enumerate(runs):  # a fresh hub and root each round, a raw copy before
            if r:
                for node in (hub, root):
                    node.stop()
                    procs.remove(node)
                    shutil.rmtree(node.data)
                shutil.copytree(tmp / "hub-snap", tmp / f"hub{r}", copy_function=_link_blobs)
                hub = HubProc(tmp / f"hub{r}")
                procs.append(hub)
                root = HubProc(tmp / f"root{r}", national=True, extra=("--approve-all",))
                procs.append(root.start())
            raw3_s = asyncio.run(raw_copy(pages, tmp / f"raw3-{r}"))
            shutil.rmtree(tmp / f"raw3-{r}")
            hub.extra = ("--approve-all", "--upstream", root.url, "--upstream-lanes", str(lanes))
            t0 = time.perf_counter()
            hub.start()
            wait_for(partial(held_over, root, 0), 3600, "the first scan at the root", 0.02)
            t1 = time.perf_counter()
            first = held(root)
            wait_for(partial(held_over, root, n - 1), 3600, "the root to hold every scan", 0.05)
            fwd_s = time.perf_counter() - t1
            hub.stop()
            rest = (n - first) * size / 1e6
            raw_rest = raw3_s * (n - first) / n  # the raw copy of the same bytes
            fwd[lanes].append(raw_rest / fwd_s)
            print(f"hub -> root ({lanes:2d} lanes):  {fwd_s:7.2f} s  {rest / fwd_s:7.1f} MB/s  "
                  f"({raw_rest / fwd_s:.0%} of a raw copy just before: {raw3_s:.2f} s; from "
                  f"the first scan at the root, {t1 - t0:.1f} s after the restart)")  # fmt: skip
        for lanes, got in fwd.items():
            if len(got) > 1:
                print(f"  hub -> root, {lanes} lanes: median {statistics.median(got):.0%} of "
                      f"raw ({', '.join(f'{x:.0%}' for x in got)})")  # fmt: skip

        if not a.no_faults:
            root2 = HubProc(tmp / "root2", national=True, extra=("--approve-all",)).start()
            faults = {"p_cut": 0.1, "p_reset": 0.05, "p_busy": 0.02, "retry_after": 1}
            proxy = FaultProxyProc(tmp / "proxy.log", root2.url, seed=7, faults=faults).start()
            hub2 = HubProc(tmp / "hub2", extra=("--approve-all", "--upstream", proxy.url))
            procs += [root2, proxy, hub2.start()]
            run_json(C1CLIENT, "sync", "--data", laptop, "--hub", hub2.url, "--add-hub", "--once")
            t0 = time.perf_counter()
            wait_for(lambda: held(root2) == n, 3600, "the root to hold every scan", interval=0.1)
            bad_s = time.perf_counter() - t0
            st = proxy.stats()
            cut = sum(
                c for kind in ("cut", "reset", "busy", "drop")
                for path, c in st["paths"].get(kind, {}).items() if path.startswith("/v1/blobs/")
                and path != "/v1/blobs/lacking"
            )  # fmt: skip
            sent = st["body_bytes"].get("PUT", 0)
            extra = sent - n * size
            print(f"hub -> root, faulty link:      {bad_s:7.2f} s  {mb / bad_s:7.1f} MB/s  "
                  f"{cut} uploads interrupted; bytes re-sent {extra} "
                  f"({extra / max(cut, 1) / 1e6:.2f} MB each; a chunk is 1.05 MB)")  # fmt: skip
    finally:
        for p in reversed(procs):
            terminate(p.proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
