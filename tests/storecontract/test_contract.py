"""The storage contract (``hub.storage.HubStorage``), run against every backend of
conftest.py: what the hub service relies on, whichever store keeps its entries."""

from __future__ import annotations

from typing import Any

import pytest

from hub.protocol import enroll, state, worklist
from hub.protocol.errors import ProtocolError
from hub.protocol.identity import Identity
from hub.protocol.ingest import Head
from hub.shared import generator
from hub.storage import HubStorage, NodeInfo
from tests.pg.helpers import check, forms, ident, sign
from tests.storecontract.conftest import Opener

ROOT = NodeInfo("ROOT", "root", "root", bytes(32))


async def approved(store: HubStorage, who: Identity, name: str = "L") -> None:
    await store.enroll(who.public, name, "laptop", 1)
    await store.approve(who.public, 2, b"E(" + name.encode() + b")")


async def test_push_is_exactly_once_and_heads_only_move_forward(store: HubStorage) -> None:
    who = ident(1)
    await approved(store, who)
    raws = sign(who, forms(30, seed=1))
    r = await store.push(check(raws[:20]), 3)
    assert r.plan.counts()["accept"] == 20
    assert r.heads[who.public].seq == 20 and r.devices[who.public].state == "approved"
    again = await store.push(check(raws[:25]), 4)  # a replay overlapping new records
    assert again.plan.counts() == {**again.plan.counts(), "accept": 5, "duplicate": 20}
    assert (await store.heads_of([who.public, ident(2).public])) == {
        who.public: again.heads[who.public]
    }
    assert again.heads[who.public].seq == 25
    old = await store.push(check(raws[:3]), 5)  # an old batch: heads stay where they are
    assert old.heads[who.public].seq == 25 and old.plan.counts()["duplicate"] == 3
    c = await store.counters()
    assert c.records_stored == 25 and c.forks == 0 and c.devices == {"approved": 1}


async def test_a_gap_is_refused_and_nothing_after_it_is_stored(store: HubStorage) -> None:
    who = ident(3)
    await approved(store, who)
    raws = sign(who, forms(6, seed=3))
    r = await store.push(check(raws[:2] + raws[3:]), 3)
    assert r.plan.counts()["accept"] == 2 and r.heads[who.public].seq == 2
    assert (await store.counters()).records_stored == 2


async def test_a_fork_is_kept_once_and_stops_counting_the_origin(store: HubStorage) -> None:
    who = ident(4)
    await approved(store, who)
    raws = sign(who, forms(5, seed=4))
    other = sign(who, forms(5, seed=40))  # the same key, another log: a copied data folder
    await store.push(check(raws), 3)
    r = await store.push(check(other[:1]), 4)
    assert len(r.plan.forks) == 1 and r.devices[who.public].forked
    again = await store.push(check(other[:1]), 5)  # the same evidence again: kept once
    assert not again.plan.forks
    (fork,) = await store.forks()
    assert fork["seq"] == 1 and fork["evidence"] == other[0].hex()
    assert fork["held"] == raws[0].hex() and fork["device"] == who.node_id
    assert await store.forks(after=fork["id"]) == []
    s = await store.status(ROOT, 0)
    assert s["forks"] == 1 and s["entries"] == {"accepted": 0, "held": 5, "total": 5}
    assert (await store.device(who.public)).forked  # type: ignore[union-attr]
    more = await store.push(check(sign(who, forms(1, seed=41), start=6)), 6)
    assert more.plan.counts()["accept"] == 0  # nothing more from it


async def test_pending_entries_are_held_until_approval_and_cut_at_revocation(
    store: HubStorage,
) -> None:
    who = ident(5)
    await store.enroll(who.public, "P", "laptop", 1)
    raws = sign(who, forms(8, seed=5))
    await store.push(check(raws[:5]), 2)
    s = await store.status(ROOT, 0)
    assert s["entries"] == {"accepted": 0, "held": 5, "total": 5} and s["tps"]["single"] == 0
    d = await store.approve(who.public, 3, b"E(P)")
    assert d.state == "approved" and d.endorsement == b"E(P)"
    assert (await store.status(ROOT, 0))["entries"]["accepted"] == 5
    d = await store.revoke(who.public, 4)
    assert d.state == "revoked" and d.revoked_after_seq == 5
    r = await store.push(check(raws[5:]), 5)
    assert r.plan.counts()["accept"] == 0
    s = await store.status(ROOT, 0)
    assert s["entries"]["accepted"] == 5 and s["tps"]["single"] == 5
    assert s["devices"] == {"pending": 0, "approved": 0, "revoked": 1}


async def test_a_root_refuses_unknown_origins(open_store: Opener) -> None:
    store = await open_store(refuse_unknown=True)
    who = ident(6)
    r = await store.push(check(sign(who, forms(2, seed=6))), 1)
    assert r.plan.counts()["accept"] == 0 and not r.heads
    assert await store.device(who.public) is None


async def test_enrollment_names_once_and_keeps_the_role(store: HubStorage) -> None:
    who = ident(7)
    d = await store.enroll(who.public, "", "laptop", 1)
    assert d.state == "pending" and d.name == "" and d.node_id == who.node_id
    assert (await store.enroll(who.public, "Ani", "laptop", 2)).name == "Ani"
    assert (await store.enroll(who.public, "Budi", "laptop", 3)).name == "Ani"
    with pytest.raises(ProtocolError) as err:
        await store.enroll(who.public, "Ani", "hub", 4)
    assert err.value.code == "role_change"
    assert (await store.lookup(who.node_id.lower())) == await store.device(who.public)
    assert (await store.lookup(who.public.hex())) is not None
    assert await store.lookup("NOPE") is None


async def test_a_hubs_word_admits_approves_and_its_revocation_cascades(store: HubStorage) -> None:
    room, direct, vouched, waiting = ident(10), ident(11), ident(12), ident(13)
    await store.enroll(room.public, "Room", "hub", 1)
    await store.enroll(waiting.public, "W", "laptop", 1)
    await approved(store, direct, "D")
    words = [
        enroll.open_endorsement(enroll.endorse(room, p, n, "laptop", 2))
        for p, n in ((vouched.public, "V"), (waiting.public, "W"), (direct.public, "D"))
    ]
    await store.push([], 2, words)  # the hub is pending: its word makes nothing approved
    assert (await store.device(vouched.public)).state == "pending"  # type: ignore[union-attr]
    assert all([await store.holds_endorsement(e) for e in words])
    await store.approve(room.public, 3, b"E(Room)")  # now its word counts
    for p in (vouched, waiting):
        assert (await store.device(p.public)).state == "approved"  # type: ignore[union-attr]
    await store.revoke(room.public, 4)  # approved only through it: revoked with it
    for p in (vouched, waiting):
        assert (await store.device(p.public)).state == "revoked"  # type: ignore[union-attr]
    assert (await store.device(direct.public)).state == "approved"  # type: ignore[union-attr]


async def test_status_and_results_count_single_verified_and_conflict(store: HubStorage) -> None:
    a, b = ident(20), ident(21)
    await approved(store, a, "A")
    await approved(store, b, "B")
    base = forms(4, seed=20)
    changed = _other_votes(base[2])
    await store.push(check(sign(a, base)), 3)
    await store.push(check(sign(b, [base[0], base[1], changed])), 3)
    s = await store.status(ROOT, 0)
    assert s["tps"] == {"single": 1, "verified": 2, "conflict": 1}
    assert [c["tps"] for c in s["conflicts"]] == [base[2]["tps"]]
    total = await store.results(generator.ELECTION)
    ppwp = total["forms"]["PPWP"]
    assert ppwp["tps"] == s["tps"] and ppwp["tps_counted"] == 3
    want: dict[str, int] = {}
    for f in (base[0], base[1], base[3]):
        for no, v in _votes(f).items():
            want[no] = want.get(no, 0) + v
    assert ppwp["votes"] == {k: v for k, v in want.items() if v}
    assert s["totals"]["pemilu-2024"]["PPWP"]["votes"] == ppwp["votes"]
    prov = base[0]["tps"][:2]
    assert list(ppwp["children"]) == [prov]
    assert ppwp["children"][prov] == {"votes": ppwp["votes"], "tps": ppwp["tps"]}
    under = (await store.results(generator.ELECTION, "province", prov))["forms"]["PPWP"]
    assert {k: under[k] for k in ("votes", "tps", "flags")} == {
        k: ppwp[k] for k in ("votes", "tps", "flags")
    }
    kab = {f["tps"][:4] for f in base}
    assert set(under["children"]) == kab
    assert await store.results(generator.ELECTION, "province", "11") == {
        "election": generator.ELECTION,
        "level": "province",
        "code": "11",
        "forms": {},
    }
    with pytest.raises(ValueError):
        await store.results(generator.ELECTION, "province", "1")


async def test_counted_facts_feed_the_work_list(store: HubStorage) -> None:
    a, p = ident(30), ident(31)
    await approved(store, a)
    await store.enroll(p.public, "P", "laptop", 1)
    await store.push(check(sign(a, forms(3, seed=30))), 2)
    await store.push(check(sign(p, forms(2, seed=31))), 2)  # pending: not counted
    facts = await store.counted_facts(worklist.Query())
    assert sorted(f.origin for f in facts) == [a.public] * 3
    assert all(isinstance(f, state.EntryFacts) and f.key[1] == "PPWP" for f in facts)


async def test_meta_devices_and_receipts(store: HubStorage) -> None:
    assert await store.get_meta("k") is None
    await store.set_meta("k", b"1")
    await store.set_meta("k", b"2")
    assert await store.get_meta("k") == b"2"
    who = ident(40)
    await approved(store, who, "Ani")
    assert await store.upstream_receipt(who.public) is None
    (info,) = await store.device_list(bytes(32))
    assert info.id == who.node_id and info.state == "approved" and info.entries == 0
    await store.push(check(sign(who, forms(2, seed=40))), 3)
    d = await store.device(who.public)
    assert d is not None
    info = await store.device_info(d, bytes(32))
    assert (info.entries, info.head) == (2, 2)
    assert (await store.heads_of([who.public]))[who.public] != Head()


async def test_the_device_list_comes_in_pages_oldest_first(store: HubStorage) -> None:
    for i in range(7):  # three seen at 1, three at 2, one at 3: ties go by node id
        await store.enroll(ident(100 + i).public, f"L{i}", "laptop", 1 + i // 3)
    whole = await store.device_list(bytes(32))
    assert [(d.first_seen, d.id) for d in whole] == sorted((d.first_seen, d.id) for d in whole)
    pages, after = [], None
    while not pages or len(pages[-1]) == 3:
        pages.append(await store.device_page(bytes(32), after, 3))
        after = (pages[-1][-1].first_seen, pages[-1][-1].id) if pages[-1] else None
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [d for p in pages for d in p] == whole
    assert await store.device_page(bytes(32), (3, whole[-1].id), 3) == []


def _votes(f: dict[str, Any]) -> dict[str, int]:
    return {str(no): int(v) for no, v in f["suara"].items()}


def _other_votes(f: dict[str, Any]) -> dict[str, Any]:
    """The same form with other numbers (a typing difference: a conflict)."""
    g = {**f, "suara": dict(f["suara"])}
    g["suara"]["1"] = (g["suara"]["1"] + 1) % 1000
    return g


async def test_hub_level_rules_r12_and_r13_follow_the_counted_entries(store: HubStorage) -> None:
    who = ident(60)
    await approved(store, who)
    x, y = forms(2, seed=60)
    scan = "ab" * 32
    x["scans"], y["scans"] = [scan], [scan]  # one page image under two TPS: R12
    (dpr,) = forms(1, seed=61, form="DPR")
    dpr["tps"] = x["tps"]  # another ballot of the same TPS, other users total: R13
    dpr["pengguna_total"] = {**dpr["pengguna_total"], "j": x["pengguna_total"]["j"] + 1}
    await store.push(check(sign(who, [x, y, dpr])), 3)
    s = await store.status(ROOT, 0)
    assert (s["flags"].get("R12"), s["flags"].get("R13")) == (1, 1)
    assert s["scan_reuse"] == [{"scan": scan, "tps": sorted([x["tps"], y["tps"]])}]
    assert s["users_mismatch"] == [
        {
            "election": generator.ELECTION,
            "tps": x["tps"],
            "forms": {"DPR": [dpr["pengguna_total"]["j"]], "PPWP": [x["pengguna_total"]["j"]]},
        }
    ]
    other = ident(61)  # pending: its entries count for nothing, rules included
    await store.enroll(other.public, "P", "laptop", 1)
    z = {**forms(1, seed=62)[0], "scans": [scan]}
    await store.push(check(sign(other, [z])), 4)
    assert (await store.status(ROOT, 0))["scan_reuse"][0]["tps"] == sorted([x["tps"], y["tps"]])
    await store.approve(other.public, 5)
    assert (await store.status(ROOT, 0))["scan_reuse"][0]["tps"] == sorted(
        [x["tps"], y["tps"], z["tps"]]
    )
