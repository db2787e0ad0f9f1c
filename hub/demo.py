"""``c1hub demo``: a whole counting room on this machine, end to end.

A national stand-in (root), a room hub forwarding to it, and several simulated operator laptops
— real ``Hub`` and ``ClientStore`` objects with real SQLite files in a temporary folder, talking
real HTTP on 127.0.0.1. The laptops type realistic C1 forms (real Jakarta TPS codes when the
polling-station master is given), some with the paper's own arithmetic mistakes, some typed
twice, one pair in conflict. Midway the national server goes down; typing and syncing to the
room hub go on; it comes back and the room's stream catches up. At the end the demo checks that
the national side holds exactly the set of entries the laptops made, every signature verified,
and exits non-zero if anything is off.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import aiohttp

from client.store import ClientStore
from client.sync import sync_once
from hub.config import HubConfig
from hub.node import Hub, init_data_dir
from hub.protocol import clock, entry, record
from hub.service import HubService
from hub.shared import generator
from hub.shared.master import load_master
from hub.store import HubStore


@dataclass(frozen=True, slots=True)
class DemoOptions:
    laptops: int = 4
    forms: int = 240
    wilayah: Path | None = None
    seed: int = 2024
    outage: bool = True
    keep: Path | None = None
    chunk: int = 2  # forms a laptop types between two syncs
    pace: float = 0.25  # seconds between typing rounds (operators are not instant)


class Room:
    """The demo's moving parts and their counters."""

    def __init__(self, base: Path, opts: DemoOptions, out: TextIO):
        self.base = base
        self.opts = opts
        self.out = out
        self.national: Hub | None = None
        self.national_port = 0
        self.room: Hub | None = None
        self.stores: list[ClientStore] = []
        self.entered: set[bytes] = set()
        self.t0 = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:5.1f}s] {text}", file=self.out, flush=True)

    async def start_national(self) -> Hub:
        cfg = HubConfig(data_dir=self.base / "national", host="127.0.0.1",
                        port=self.national_port, mdns=False, root=True)  # fmt: skip
        hub = Hub(cfg)
        await hub.start()
        assert hub.port is not None
        self.national_port = hub.port
        self.national = hub
        return hub

    def progress(self) -> str:
        assert self.room is not None
        room = self.room.service
        up = room.status_now()["upstream"]
        at_national = self.national.service.status_now()["entries"]["total"] if self.national else 0
        return (
            f"entered {len(self.entered):4d} | at room hub {_lite(room).records_stored:4d}"
            f" | confirmed national {up['confirmed']:4d} | national holds "
            f"{at_national if self.national else '—':>4} | upstream {up['state']:<7}"
            f" backlog {up['backlog']:4d}"
        )


def _lite(service: HubService) -> HubStore:
    """The demo's hubs keep SQLite (the default)."""
    store = service.sqlite()
    assert store is not None
    return store


async def _eventually(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def run(opts: DemoOptions, out: TextIO = sys.stdout) -> int:
    """Run the demo; return the process exit code (0 = the national side holds exactly what
    was entered)."""
    if opts.keep is not None:
        opts.keep.mkdir(parents=True, exist_ok=True)
        return await _run(opts.keep, opts, out)
    base = Path(tempfile.mkdtemp(prefix="c1hub-demo-"))
    try:
        return await _run(base, opts, out)
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def _run(base: Path, opts: DemoOptions, out: TextIO) -> int:
    r = Room(base, opts, out)
    master = load_master(opts.wilayah) if opts.wilayah else None
    where = "real DKI Jakarta TPS codes" if master else "synthetic TPS codes (no --wilayah)"
    kept = "kept" if opts.keep is not None else "removed at the end; --keep DIR keeps it"
    r.say(
        f"c1hub demo: {opts.laptops} laptops, {opts.forms} distinct forms (some typed twice on a "
        f"second laptop), {where}; data in {base} ({kept})"
    )

    init_data_dir(base / "national", "Nasional (stand-in)")
    init_data_dir(base / "room", "Ruang Hotel A")
    national = await r.start_national()
    room = Hub(HubConfig(data_dir=base / "room", host="127.0.0.1", port=0, mdns=False,
                         upstream=national.url, wilayah=opts.wilayah))  # fmt: skip
    await room.start()
    r.room = room
    try:
        await _eventually(
            lambda: room.ident.public in _lite(national.service).devices, "enrollment"
        )
        await national.service.approve(room.ident.node_id, "hub")
        r.say(f"national {national.ident.node_id} approved room hub {room.ident.node_id}")

        work = generator.room_workload(
            opts.forms, opts.laptops, seed=opts.seed, master=master, region="31",
            forms=("PPWP", "DPR", "DPD", "DPRD_PROV"), mistake_rate=0.15,
            double_rate=0.08, conflicts=1,
        )  # fmt: skip
        now = clock.now_s()
        async with aiohttp.ClientSession() as http:
            for i in range(opts.laptops):
                store, _ = await ClientStore.create(base / f"laptop-{i + 1}", f"Laptop {i + 1}",
                                                    now=now)  # fmt: skip
                r.stores.append(store)
                rep = await sync_once(store, http, hub_url=room.url)
                await room.service.approve(store.identity.node_id)
                r.say(f"laptop {store.node_id} enrolled, code {rep.code} checked, approved")

            total = sum(len(w) for w in work)
            typed = [0] * opts.laptops
            outage_at, back_at = int(total * 0.35), int(total * 0.7)
            went_down = came_back = not opts.outage
            last_print = 0.0
            while any(typed[i] < len(work[i]) for i in range(opts.laptops)):
                for i, store in enumerate(r.stores):
                    batch = work[i][typed[i] : typed[i] + opts.chunk]
                    if not batch:
                        continue
                    bodies = [entry.encode_body(entry.parse(f), clock.now_s()) for f in batch]
                    for rec in await store.append(bodies):
                        r.entered.add(rec.hash)
                    typed[i] += len(batch)
                    await sync_once(store, http, hub_url=room.url)
                n = len(r.entered)
                if not went_down and n >= outage_at:
                    await national.stop()
                    r.national = None
                    went_down = True
                    r.say("!!! national server DOWN — the room keeps typing and syncing locally")
                elif went_down and not came_back and n >= back_at:
                    national = await r.start_national()
                    came_back = True
                    r.say("national server back UP — the room hub resumes its stream")
                if time.monotonic() - last_print > 1.0:
                    r.say(r.progress())
                    last_print = time.monotonic()
                await asyncio.sleep(opts.pace)
            r.say(r.progress())
            r.say("all forms typed; waiting for the stream to catch up")
            assert r.national is not None
            await _eventually(
                lambda: (
                    room.service.status_now()["upstream"]["backlog"] == 0
                    and national.service.status_now()["entries"]["total"] >= len(r.entered)
                ),
                "the upstream backlog to drain",
            )
            for store in r.stores:
                await sync_once(store, http, hub_url=room.url)
            r.say(r.progress())
        return await _verdict(r, national)
    finally:
        for store in r.stores:
            await store.close()
        await room.stop()
        if r.national is not None:
            await r.national.stop()


async def _verdict(r: Room, national: Hub) -> int:
    store = _lite(national.service)
    held: set[bytes] = set()
    bad = 0
    async for _dev, _seq, raw in store.iter_records():
        rec = record.decode(raw)
        try:
            rec.verify()
        except Exception:
            bad += 1
        held.add(rec.hash)
    s = national.service.status_now()
    confirmed = [await st.highest_receipt("upstream") for st in r.stores]
    typed = [await st.last_seq() for st in r.stores]
    missing, extra = r.entered - held, held - r.entered
    ok = not missing and not extra and bad == 0 and s["entries"]["held"] == 0
    ok = ok and confirmed == typed
    print("", file=r.out)
    print("=" * 72, file=r.out)
    print(f"entered on the laptops:           {len(r.entered)}", file=r.out)
    e = s["entries"]
    print(f"held at the national stand-in:    {len(held)} "
          f"({e['accepted']} accepted, {e['held']} held)", file=r.out)  # fmt: skip
    print(f"missing at national / unexpected: {len(missing)} / {len(extra)}", file=r.out)
    print(f"signatures re-verified:           {len(held) - bad} ok, {bad} bad", file=r.out)
    print(f"laptops seeing 'confirmed':       {sum(confirmed)} of {sum(typed)}", file=r.out)
    t = s["tps"]
    print(f"forms per TPS: {t['single']} single, {t['verified']} verified (typed twice, equal),"
          f" {t['conflict']} in conflict", file=r.out)  # fmt: skip
    flags = ", ".join(f"{k} {v}" for k, v in s["flags"].items()) or "none"
    print(f"flags (the paper's own mistakes): {flags}", file=r.out)
    ppwp = s["totals"].get("pemilu-2024", {}).get("PPWP")
    if ppwp:
        votes = ", ".join(f"no. {k}: {v}" for k, v in ppwp["votes"].items())
        print(f"PPWP totals over {ppwp['tps_counted']} TPS: {votes}", file=r.out)
    print("=" * 72, file=r.out)
    print("OK: the national side holds exactly what was entered, every signature verified."
          if ok else "FAILED: the national side does not hold exactly what was entered.",
          file=r.out)  # fmt: skip
    return 0 if ok else 1


def main_sync(opts: DemoOptions) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run(opts))
    return 130
