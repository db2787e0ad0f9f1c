"""Derived state: single / verified / conflict, supersedes, R12, R13, determinism."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest

from hub.protocol import entry, record, state
from hub.protocol.identity import Identity
from hub.protocol.state import CONFLICT, SINGLE, VERIFIED, EntryFacts
from hub.shared import generator

AT = 1707890400
TPS_A = "3171011001001"
TPS_B = "3171011001002"
LAPTOP_1 = Identity.from_seed(b"\x11" * 32)
LAPTOP_2 = Identity.from_seed(b"\x12" * 32)
LAPTOP_3 = Identity.from_seed(b"\x13" * 32)


def form(tps: str = TPS_A, kind: str = "PPWP", seed: int = 5, operator: str = "Siti") -> Any:
    return generator.make_form(random.Random(seed), tps, kind, operator=operator)


_seq: dict[bytes, int] = {}


def facts(f: dict[str, Any], by: Identity, supersedes: EntryFacts | None = None) -> EntryFacts:
    """Sign ``f`` as the next record of ``by`` and return what derived state needs of it."""
    if supersedes is not None:
        f = dict(f, supersedes=supersedes.hash.hex())
    body = entry.parse(f)
    seq = _seq[by.public] = _seq.get(by.public, 0) + 1
    rec = record.make(
        by, seq, hashlib.sha256(b"%d" % (seq - 1)).digest(), entry.encode_body(body, AT)
    )
    sup = body.get("supersedes")
    return EntryFacts(
        hash=rec.hash,
        origin=rec.origin,
        key=entry.key(body),
        numbers=entry.numbers(body),
        supersedes=bytes.fromhex(sup) if sup else None,
        users_total_j=body["pengguna_total"]["j"],
        scans=tuple(body["scans"]),
    )


def one(states: dict[state.Key, state.TpsState], tps: str = TPS_A, kind: str = "PPWP") -> Any:
    return states[("pemilu-2024", kind, tps)]


def slip(f: dict[str, Any]) -> dict[str, Any]:
    """The same form with a typing slip: 72 typed as 172."""
    g = generator._copy(f)
    g["suara"]["1"] += 100
    return g


def test_single() -> None:
    a = facts(form(), LAPTOP_1)
    st = one(state.derive([a]))
    assert st.status == SINGLE
    assert st.live == [a.hash]
    assert st.superseded == []


def test_verified_by_two_laptops() -> None:
    a = facts(form(operator="Siti"), LAPTOP_1)
    b = facts(form(operator="Budi"), LAPTOP_2)  # different typist, same numbers
    st = one(state.derive([a, b]))
    assert st.status == VERIFIED
    assert st.live == sorted([a.hash, b.hash])


def test_same_laptop_twice_is_still_single() -> None:
    a = facts(form(), LAPTOP_1)
    b = facts(form(operator="Siti lagi"), LAPTOP_1)
    st = one(state.derive([a, b]))
    assert st.status == SINGLE
    assert len(st.live) == 2


def test_conflict() -> None:
    a = facts(form(), LAPTOP_1)
    b = facts(slip(form()), LAPTOP_2)
    st = one(state.derive([a, b]))
    assert st.status == CONFLICT
    assert st.live == sorted([a.hash, b.hash])


def test_conflict_from_one_laptop() -> None:
    a = facts(form(), LAPTOP_1)
    b = facts(slip(form()), LAPTOP_1)
    assert one(state.derive([a, b])).status == CONFLICT


def test_three_laptops_one_disagrees_is_a_conflict() -> None:
    a, b = facts(form(), LAPTOP_1), facts(form(), LAPTOP_2)
    c = facts(slip(form()), LAPTOP_3)
    assert one(state.derive([a, b, c])).status == CONFLICT


def test_supersedes_resolves_a_conflict() -> None:
    a = facts(form(), LAPTOP_1)
    b = facts(slip(form()), LAPTOP_2)
    fix = facts(form(operator="Koordinator"), LAPTOP_2, supersedes=b)  # B's laptop corrects it
    st = one(state.derive([a, b, fix]))
    assert st.status == VERIFIED
    assert st.live == sorted([a.hash, fix.hash])
    assert st.superseded == [b.hash]


def test_supersede_chain() -> None:
    a = facts(slip(form()), LAPTOP_1)
    b = facts(slip(slip(form())), LAPTOP_1, supersedes=a)
    c = facts(form(), LAPTOP_1, supersedes=b)
    st = one(state.derive([c, a, b]))
    assert (st.status, st.live, st.superseded) == (SINGLE, [c.hash], sorted([a.hash, b.hash]))


def test_supersedes_of_an_unknown_entry_changes_nothing() -> None:
    a = facts(form(), LAPTOP_1)
    b = facts(form(), LAPTOP_2, supersedes=facts(slip(form()), LAPTOP_3))
    st = one(state.derive([a, b]))
    assert st.status == VERIFIED
    assert st.superseded == []


def test_supersedes_pointing_at_another_tps_is_ignored() -> None:
    a = facts(form(TPS_A), LAPTOP_1)
    b = facts(slip(form(TPS_A)), LAPTOP_2)
    wrong = facts(form(TPS_B), LAPTOP_1, supersedes=b)  # names TPS_A's entry from TPS_B
    states = state.derive([a, b, wrong])
    assert one(states, TPS_A).status == CONFLICT
    assert one(states, TPS_A).live == sorted([a.hash, b.hash])
    assert one(states, TPS_B).status == SINGLE


def test_supersedes_pointing_at_another_form_is_ignored() -> None:
    a = facts(form(kind="PPWP"), LAPTOP_1)
    d = facts(form(kind="DPD"), LAPTOP_1, supersedes=a)
    states = state.derive([a, d])
    assert one(states, kind="PPWP").live == [a.hash]
    assert one(states, kind="DPD").live == [d.hash]


def _raw_facts(h: bytes, origin: bytes, numbers: bytes, sup: bytes | None) -> EntryFacts:
    return EntryFacts(h, origin, ("pemilu-2024", "PPWP", TPS_A), numbers, sup, 200)


def test_supersede_cycle_shows_every_entry_as_a_conflict() -> None:
    # Two entries naming each other cannot be built with SHA-256; derive must not crash or
    # pick a winner if the data say so anyway.
    ha, hb = b"\xaa" * 32, b"\xbb" * 32
    for numbers_b in (b"same", b"other"):
        a = _raw_facts(ha, b"o1", b"same", hb)
        b = _raw_facts(hb, b"o1", numbers_b, ha)
        st = one(state.derive([a, b]))
        assert st.status == CONFLICT
        assert st.live == [ha, hb]
        assert st.superseded == []


def test_self_supersede_is_ignored() -> None:
    h = b"\xaa" * 32
    st = one(state.derive([_raw_facts(h, b"o1", b"n", h)]))
    assert (st.status, st.live) == (SINGLE, [h])


def test_status_counts() -> None:
    entries = [
        facts(form(TPS_A), LAPTOP_1),
        facts(form(TPS_A), LAPTOP_2),
        facts(form(TPS_B), LAPTOP_1),
        facts(form("3171011001003"), LAPTOP_1),
        facts(slip(form("3171011001003")), LAPTOP_2),
    ]
    states = state.derive(entries)
    assert state.status_counts(states.values()) == {SINGLE: 1, VERIFIED: 1, CONFLICT: 1}
    assert state.status_counts([]) == {SINGLE: 0, VERIFIED: 0, CONFLICT: 0}


# --- R12 ------------------------------------------------------------------------------------

SCAN_1 = hashlib.sha256(b"page 1").hexdigest()
SCAN_2 = hashlib.sha256(b"page 2").hexdigest()


def test_r12_scan_under_two_tps() -> None:
    a = facts(dict(form(TPS_A), scans=[SCAN_1, SCAN_2]), LAPTOP_1)
    b = facts(dict(form(TPS_B), scans=[SCAN_2]), LAPTOP_2)
    assert state.scan_reuse([a, b]) == {SCAN_2: [TPS_A, TPS_B]}


def test_r12_same_scan_for_one_tps_is_fine() -> None:
    # Double entry from the same page, and two forms of one TPS on one page, are normal.
    a = facts(dict(form(TPS_A), scans=[SCAN_1]), LAPTOP_1)
    b = facts(dict(form(TPS_A), scans=[SCAN_1]), LAPTOP_2)
    c = facts(dict(form(TPS_A, kind="DPD"), scans=[SCAN_1]), LAPTOP_2)
    assert state.scan_reuse([a, b, c]) == {}


# --- R13 ------------------------------------------------------------------------------------


def _with_users_j(f: dict[str, Any], delta: int) -> dict[str, Any]:
    g = generator._copy(f)
    g["pengguna_dpt"]["l"] += delta
    g["pengguna_dpt"]["j"] += delta
    g["pengguna_total"]["l"] += delta
    g["pengguna_total"]["j"] += delta
    return g


def test_r13_users_totals_differ_between_forms() -> None:
    ppwp = facts(form(kind="PPWP", seed=1), LAPTOP_1)
    dpr = facts(form(kind="DPR", seed=2), LAPTOP_1)
    entries = [ppwp, dpr]
    assert ppwp.users_total_j != dpr.users_total_j
    got = state.users_mismatch(entries, state.derive(entries))
    assert got == {
        ("pemilu-2024", TPS_A): {"DPR": [dpr.users_total_j], "PPWP": [ppwp.users_total_j]}
    }


def test_r13_equal_users_totals_are_fine() -> None:
    base = form(kind="PPWP", seed=1)
    dpr = form(kind="DPR", seed=1)  # same seed: same voters, different ballot
    entries = [facts(base, LAPTOP_1), facts(dpr, LAPTOP_1)]
    assert entries[0].users_total_j == entries[1].users_total_j
    assert state.users_mismatch(entries, state.derive(entries)) == {}


def test_r13_needs_two_forms() -> None:
    a = facts(form(), LAPTOP_1)
    b = facts(_with_users_j(form(), 1), LAPTOP_2)  # a conflict, not R13
    entries = [a, b]
    assert one(state.derive(entries)).status == CONFLICT
    assert state.users_mismatch(entries, state.derive(entries)) == {}


def test_r13_ignores_superseded_entries() -> None:
    ppwp = facts(form(kind="PPWP", seed=1), LAPTOP_1)
    wrong = facts(_with_users_j(form(kind="DPR", seed=1), 2), LAPTOP_1)
    entries = [ppwp, wrong]
    assert state.users_mismatch(entries, state.derive(entries)) != {}
    fixed = facts(form(kind="DPR", seed=1), LAPTOP_1, supersedes=wrong)
    entries.append(fixed)
    assert state.users_mismatch(entries, state.derive(entries)) == {}


# --- determinism ----------------------------------------------------------------------------


def _room() -> list[EntryFacts]:
    out: list[EntryFacts] = []
    laptops = [LAPTOP_1, LAPTOP_2, LAPTOP_3]
    for i, tps in enumerate(f"31710110010{n:02d}" for n in range(1, 13)):
        f = dict(form(tps, seed=i), scans=[hashlib.sha256(tps.encode()).hexdigest()])
        a = facts(f, laptops[i % 3])
        out.append(a)
        if i % 2:
            out.append(facts(f if i % 4 == 1 else slip(f), laptops[(i + 1) % 3]))
        if i % 3 == 0:
            out.append(facts(form(tps, kind="DPD", seed=i + 100), laptops[i % 3]))
        if i == 7:
            out.append(facts(f, laptops[i % 3], supersedes=out[-1]))
    out.append(facts(dict(form(TPS_B, kind="DPR"), scans=[SCAN_1]), LAPTOP_1))
    out.append(facts(dict(form(TPS_A, kind="DPR"), scans=[SCAN_1]), LAPTOP_2))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_shuffled_input_gives_identical_output(seed: int) -> None:
    entries = _room()
    states = state.derive(entries)
    assert {s.status for s in states.values()} == {SINGLE, VERIFIED, CONFLICT}
    shuffled = list(entries)
    random.Random(seed).shuffle(shuffled)
    again = state.derive(shuffled)
    assert again == states
    assert sorted(again.items()) == sorted(states.items())
    assert state.scan_reuse(shuffled) == state.scan_reuse(entries) != {}
    assert state.users_mismatch(shuffled, again) == state.users_mismatch(entries, states) != {}
