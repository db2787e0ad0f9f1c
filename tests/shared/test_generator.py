"""The form generator: deterministic, clean unless asked, realistic room workloads."""

from __future__ import annotations

import random
from collections import Counter
from itertools import islice
from typing import Any

import pytest

from hub.protocol import entry, rules, state
from hub.protocol.wilayah import Master
from hub.shared import generator

TINY = Master.from_json({"tps": {"3171011001": [6], "3171011002": [4, 901, 902]}})


def as_facts(room: list[list[dict[str, Any]]]) -> list[state.EntryFacts]:
    """Derived-state facts of a workload, one origin per laptop, one hash per entry."""
    out = []
    for lap, forms in enumerate(room):
        for i, f in enumerate(forms):
            body = entry.parse(f)
            out.append(
                state.EntryFacts(
                    hash=bytes([lap]) + i.to_bytes(4, "big"),
                    origin=bytes([lap]),
                    key=entry.key(body),
                    numbers=entry.numbers(body),
                    users_total_j=body["pengguna_total"]["j"],
                )
            )
    return out


def test_make_form_is_deterministic() -> None:
    for kind in entry.FORMS:
        a = generator.make_form(random.Random(9), "3201011001001", kind, operator="A")
        b = generator.make_form(random.Random(9), "3201011001001", kind, operator="A")
        c = generator.make_form(random.Random(10), "3201011001001", kind, operator="A")
        assert a == b
        assert a != c


@pytest.mark.parametrize("kind", entry.FORMS)
def test_make_form_is_valid_and_clean(kind: str) -> None:
    for seed in range(30):
        f = generator.make_form(random.Random(seed), "3201011001001", kind, operator="A")
        assert rules.check(entry.parse(f)) == []
        assert ("suara" in f) == (kind in entry.CANDIDATE_FORMS)


def test_add_mistake_kinds() -> None:
    with pytest.raises(ValueError, match="unknown mistake"):
        generator.add_mistake(random.Random(1), {}, "typo")
    seen = set()
    for seed in range(60):
        f = generator.make_form(random.Random(seed), "3171011001001", "PPWP", operator="A")
        seen.add(generator.add_mistake(random.Random(seed), f))
        entry.parse(f)  # a paper mistake is still a well-formed entry
    assert seen == set(generator.MISTAKES)


def test_synthetic_tps_codes_are_distinct_and_well_formed() -> None:
    codes = list(islice(generator.tps_codes(None, "31", random.Random(1)), 5000))
    assert len(set(codes)) == 5000
    assert all(len(c) == 13 and c.isdigit() and c.startswith("99") for c in codes)


def test_master_tps_codes_run_out_loudly() -> None:
    it = generator.tps_codes(TINY, "3171", random.Random(1))
    codes = list(islice(it, 10))
    assert sorted(codes) == sorted(TINY.tps_codes("3171"))
    with pytest.raises(ValueError, match="has only 10 TPS"):
        next(it)
    with pytest.raises(ValueError, match="no TPS under region"):
        next(generator.tps_codes(TINY, "32", random.Random(1)))


def test_forms_for() -> None:
    assert "DPRD_KABKO" not in generator.forms_for("3171011001001")
    assert generator.forms_for("3201011001001") == entry.FORMS


def test_room_workload_is_deterministic() -> None:
    a = generator.room_workload(40, 3, seed=7, forms=entry.FORMS)
    assert a == generator.room_workload(40, 3, seed=7, forms=entry.FORMS)
    assert a != generator.room_workload(40, 3, seed=8, forms=entry.FORMS)


@pytest.mark.parametrize(("count", "laptops", "conflicts"), [(50, 3, 1), (120, 4, 5), (30, 2, 0)])
def test_room_workload_counts(count: int, laptops: int, conflicts: int) -> None:
    room = generator.room_workload(count, laptops, seed=3, conflicts=conflicts, double_rate=0.2)
    assert len(room) == laptops
    keys = Counter(entry.key(entry.parse(f)) for forms in room for f in forms)
    assert len(keys) == count
    doubles = sum(keys.values()) - count
    assert doubles >= conflicts
    assert max(keys.values()) <= 2
    states = state.derive(as_facts(room))
    counts = state.status_counts(states.values())
    assert counts[state.CONFLICT] == conflicts
    assert counts[state.VERIFIED] == doubles - conflicts
    assert counts[state.SINGLE] == count - doubles


def test_room_workload_twins_are_on_another_laptop() -> None:
    room = generator.room_workload(60, 3, seed=11, double_rate=0.5)
    where: dict[Any, list[int]] = {}
    for lap, forms in enumerate(room):
        for f in forms:
            where.setdefault(entry.key(f), []).append(lap)
            assert f["operator"] == f"Operator {lap + 1:02d}"
    twins = [laps for laps in where.values() if len(laps) == 2]
    assert twins
    assert all(a != b for a, b in twins)


def test_room_workload_one_laptop_has_no_doubles() -> None:
    room = generator.room_workload(20, 1, seed=1, conflicts=3)
    assert len(room[0]) == 20
    with pytest.raises(ValueError, match="at least one laptop"):
        generator.room_workload(5, 0)


def test_room_workload_mistake_rate() -> None:
    clean = generator.room_workload(40, 2, seed=5, mistake_rate=0.0, conflicts=0)
    assert all(rules.check(entry.parse(f)) == [] for forms in clean for f in forms)
    dirty = generator.room_workload(40, 2, seed=5, mistake_rate=1.0, conflicts=0)
    assert all(rules.check(entry.parse(f)) for forms in dirty for f in forms)


def test_room_workload_all_forms_respects_jakarta() -> None:
    room = generator.room_workload(40, 2, seed=2, forms=entry.FORMS, region="31", master=TINY)
    kinds = {f["form"] for forms in room for f in forms}
    assert kinds == {"PPWP", "DPR", "DPD", "DPRD_PROV"}


def test_room_workload_uses_real_codes_from_a_master() -> None:
    room = generator.room_workload(8, 2, seed=4, master=TINY, region="3171")
    for forms in room:
        for f in forms:
            assert TINY.tps_exists(f["tps"])
            assert "R11" not in rules.rule_ids(rules.check(entry.parse(f), TINY))


def test_room_workload_with_the_real_master(real_master: Master) -> None:
    room = generator.room_workload(200, 4, seed=2024, master=real_master, region="31")
    tps = {f["tps"] for forms in room for f in forms}
    assert all(t.startswith("31") and real_master.tps_exists(t) for t in tps)
    for forms in room:
        for f in forms:
            assert "R11" not in rules.rule_ids(rules.check(entry.parse(f), real_master))


def test_voters_rng_gives_every_form_of_a_tps_the_same_voters() -> None:
    voter_keys = ("pemilih_dpt", "pengguna_dpt", "pengguna_dptb", "pengguna_dpk")
    voter_keys += ("pengguna_total", "disabilitas")
    rng = random.Random(1)
    forms = [
        generator.make_form(
            rng, "3201011001001", kind, operator="A", voters_rng=random.Random("3201011001001")
        )
        for kind in entry.FORMS
    ]
    for f in forms[1:]:
        assert {k: f[k] for k in voter_keys} == {k: forms[0][k] for k in voter_keys}
        assert f["surat_suara"]["diterima"] == forms[0]["surat_suara"]["diterima"]


def test_room_workload_keeps_r13_quiet() -> None:
    room = generator.room_workload(
        120, 3, seed=9, forms=entry.FORMS, region="32", double_rate=0.2, conflicts=2
    )
    facts = as_facts(room)
    assert state.users_mismatch(facts, state.derive(facts)) == {}


@pytest.mark.parametrize("forms", [("PPWP",), entry.FORMS, ("DPRD_KABKO", "DPD")])
def test_laptop_forms_are_a_room_of_one_streamed(forms: tuple[str, ...]) -> None:
    """``c1client generate`` streams what ``room_workload`` gives a room of one laptop."""
    for seed, master, region in ((7, None, "31"), (3, TINY, "3171"), (9, None, "32")):
        want = generator.room_workload(8, 1, seed=seed, master=master, region=region, forms=forms)
        got = generator.laptop_forms(8, seed=seed, master=master, region=region, forms=forms)
        assert list(got) == want[0]
        assert all(rules.form_allowed(f["form"], f["tps"]) for f in want[0])
    named = next(generator.laptop_forms(1, seed=7, operator="Meja 9"))
    assert named["operator"] == "Meja 9"
