"""The console's incremental status (``hub.console.tally``) against the full derivation
(``hub.status.build``): after every step of random histories the two dicts are equal."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from hub import status as status_mod
from hub.console.tally import Tally
from hub.memory import DeviceRow, Facts, Memory, StoreView
from hub.protocol import state
from hub.protocol.identity import Identity
from hub.protocol.ingest import APPROVED, PENDING, REVOKED, Head
from hub.protocol.wilayah import Master

HUB = Identity.from_seed(bytes(32))
# GAMBIR (317101) and another kecamatan of Jakarta Pusat, and one of Jakarta Utara
PLACES = ["3171011001001", "3171011001002", "3171011002001", "3171021001001", "3172011001001"]
FORMS = ["PPWP", "DPR"]
SCANS = [f"{i:064x}" for i in range(6)]


class History:
    """A random room: devices enrolling, pushing, approved, revoked, forked."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.mem = Memory()
        self.hashes: dict[state.Key, list[bytes]] = {}

    def device(self) -> None:
        n = len(self.mem.devices) + 1
        d = DeviceRow(n, Identity.from_seed(bytes([n]) * 32).public, f"DEV{n:03d}", f"Meja {n}",
                      "laptop", PENDING, n, n, None, None, 0, False, None)  # fmt: skip
        self.mem.put(d)

    def change(self) -> None:
        d = self.rng.choice(list(self.mem.devices.values()))
        head = self.mem.heads.get(d.id, Head()).seq
        how = self.rng.random()
        if how < 0.6:
            d = dataclasses.replace(d, state=APPROVED, approved_at=1)
        elif how < 0.85:
            d = dataclasses.replace(d, state=REVOKED, revoked_at=2, revoked_after_seq=head)
        else:
            d = dataclasses.replace(d, forked=True)
            self.mem.forks[d.id] = self.mem.forks.get(d.id, 0) + 1
        self.mem.put(d)

    def entry(self) -> None:
        r = self.rng
        d = r.choice(list(self.mem.devices.values()))
        seq = self.mem.heads.get(d.id, Head()).seq + 1
        key = ("pemilu-2024", r.choice(FORMS), r.choice(PLACES))
        h = r.randbytes(32)
        earlier = self.hashes.setdefault(key, [])
        sup = r.choice(earlier) if earlier and r.random() < 0.2 else None
        if sup is None and r.random() < 0.02:
            sup = h  # supersedes itself: ignored
        scans = tuple(r.sample(SCANS, r.randint(0, 2)))
        flags = tuple(sorted(r.sample(["R1", "R3", "R5", "R6"], r.randint(0, 2))))
        ef = state.EntryFacts(h, d.public, key, bytes([r.randint(0, 2)]), sup,
                              r.choice([100, 101]), scans)  # fmt: skip
        earlier.append(h)
        self.mem.facts.append(Facts(d.id, seq, ef, flags, "1:1"))
        self.mem.heads[d.id] = Head(seq, h)
        self.mem.counts[d.id] = self.mem.counts.get(d.id, 0) + 1

    def step(self) -> None:
        x = self.rng.random()
        if not self.mem.devices or x < 0.05:
            self.device()
        elif x < 0.15:
            self.change()
        else:
            self.entry()


def full(view: StoreView, master: Master | None) -> dict[str, Any]:
    return status_mod.build(view, node_id="N", name="hub", role="hub", hub_public=HUB.public,
                            master=master, now=1.0)  # fmt: skip


def tallied(t: Tally, view: StoreView, new: list[Facts]) -> dict[str, Any]:
    return t.status(view, new, node_id="N", name="hub", role="hub", hub_public=HUB.public, now=1.0)


@pytest.mark.parametrize("seed", range(12))
def test_tally_equals_the_full_derivation_after_every_step(seed: int) -> None:
    h = History(seed)
    t, seen = Tally(), 0
    for _ in range(150):
        for _ in range(h.rng.randint(1, 4)):
            h.step()
        view = h.mem.snapshot()
        got = tallied(t, view, view.facts[seen:])
        seen = len(view.facts)
        assert got == full(view, None)


def test_tally_keeps_the_hub_level_rules_and_conflicts_in_step() -> None:
    """Fixed histories that reach every branch: a conflict resolved by a superseding entry,
    R12 appearing and going away when a device is revoked, R13 across forms."""
    h = History(99)
    for _ in range(3):
        h.device()
    for dev in (1, 2, 3):
        h.mem.put(dataclasses.replace(h.mem.devices_by_id[dev], state=APPROVED, approved_at=1))
    t, seen = Tally(), 0

    def add(dev: int, key: state.Key, numbers: bytes, users: int = 100,
            scans: tuple[str, ...] = (), sup: bytes | None = None) -> bytes:  # fmt: skip
        d = h.mem.devices_by_id[dev]
        seq = h.mem.heads.get(dev, Head()).seq + 1
        hh = bytes([dev, seq]) * 16
        ef = state.EntryFacts(hh, d.public, key, numbers, sup, users, scans)
        h.mem.facts.append(Facts(dev, seq, ef, ("R3",), "1:1"))
        h.mem.heads[dev] = Head(seq, hh)
        h.mem.counts[dev] = seq
        return hh

    def check() -> dict[str, Any]:
        nonlocal seen
        view = h.mem.snapshot()
        got = tallied(t, view, view.facts[seen:])
        seen = len(view.facts)
        assert got == full(view, None)
        return got

    k = ("pemilu-2024", "PPWP", PLACES[0])
    a = add(1, k, b"1", scans=(SCANS[0],))
    b = add(2, k, b"2", scans=(SCANS[0],))
    s = check()
    assert s["tps"]["conflict"] == 1 and s["conflicts"][0]["tps"] == PLACES[0]
    add(3, k, b"1", sup=b)
    s = check()
    assert s["tps"] == {"single": 0, "verified": 1, "conflict": 0}
    assert s["flags"]["R3"] == 2 and "R12" not in s["flags"]
    add(3, ("pemilu-2024", "DPR", PLACES[0]), b"9", users=101, scans=(SCANS[0],))
    add(3, ("pemilu-2024", "PPWP", PLACES[1]), b"9", scans=(SCANS[0],))
    s = check()
    assert s["flags"]["R12"] == 1 and s["flags"]["R13"] == 1
    assert s["scan_reuse"] == [{"scan": SCANS[0], "tps": PLACES[:2]}]
    h.mem.put(dataclasses.replace(h.mem.devices_by_id[3], state=REVOKED, revoked_after_seq=1))
    s = check()  # device 3's entries after its first no longer count
    assert "R12" not in s["flags"] and "R13" not in s["flags"]
    assert s["tps"]["verified"] == 1 and s["entries"]["held"] == 2
    h.mem.put(dataclasses.replace(h.mem.devices_by_id[3], forked=True))
    s = check()  # a fork stops all of device 3's entries: the conflict is back
    assert s["conflicts"] == [{"election": "pemilu-2024", "form": "PPWP", "tps": PLACES[0],
                               "live": sorted([a.hex(), b.hex()])}]  # fmt: skip


def test_tally_gives_the_same_progress_against_the_master(real_master: Master) -> None:
    h = History(7)
    t, seen = Tally(real_master), 0
    for _ in range(60):
        for _ in range(3):
            h.step()
        view = h.mem.snapshot()
        got = tallied(t, view, view.facts[seen:])
        seen = len(view.facts)
        assert got == full(view, real_master)
    assert got["progress"]["kecamatan"], "the history entered no TPS"


def test_a_push_rederives_only_the_tps_it_touches() -> None:
    h = History(3)
    h.device()
    h.mem.put(dataclasses.replace(h.mem.devices_by_id[1], state=APPROVED, approved_at=1))
    for _ in range(200):
        h.entry()
    t = Tally()
    view = h.mem.snapshot()
    assert t.update(view.devices_by_id, view.facts) == len({f.facts.key for f in view.facts})
    h.entry()
    view = h.mem.snapshot()
    assert t.update(view.devices_by_id, view.facts[-1:]) == 1
    assert t.update(view.devices_by_id, []) == 0
