"""Rules R1–R11: for each, a clean form passes and breaking exactly one thing fires only it."""

from __future__ import annotations

import random
from typing import Any

import pytest

from hub.protocol import entry, rules
from hub.protocol.rules import Flag
from hub.protocol.wilayah import Master
from hub.shared import generator

TPS = "3171011001001"  # Jakarta: no DPRD_KABKO
TPS_JABAR = "3201011001001"
SEEDS = range(12)


def clean(kind: str = "PPWP", seed: int = 1, tps: str = TPS) -> dict[str, Any]:
    f = generator.make_form(random.Random(seed), tps, kind, operator="Siti")
    assert rules.check(entry.parse(f)) == [], "the generator must give a clean form"
    return f


def flags_of(f: dict[str, Any], master: Master | None = None) -> list[Flag]:
    return rules.check(entry.parse(f), master)


def only(f: dict[str, Any], rule: str, master: Master | None = None) -> list[Flag]:
    """The flags of ``f``, asserting that they all belong to ``rule``."""
    flags = flags_of(f, master)
    assert rules.rule_ids(flags) == [rule], [fl.to_dict() for fl in flags]
    return flags


def mentions(flag: Flag, *numbers: int | str) -> None:
    for n in numbers:
        assert str(n) in flag.en, (n, flag.en)
        assert str(n) in flag.id, (n, flag.id)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", entry.FORMS)
def test_generator_forms_are_clean(kind: str, seed: int) -> None:
    tps = TPS_JABAR if kind == "DPRD_KABKO" else TPS
    assert flags_of(generator.make_form(random.Random(seed), tps, kind, operator="A")) == []


def test_every_rule_has_a_level_and_two_summaries() -> None:
    assert sorted(rules.RULES, key=lambda r: int(r[1:])) == [f"R{i}" for i in range(1, 14)]
    for level, en, id_ in rules.RULES.values():
        assert level in (rules.ERROR, rules.WARNING)
        assert en and id_ and en != id_
    warnings = {r for r, (level, _, _) in rules.RULES.items() if level == rules.WARNING}
    assert warnings == {"R6", "R9", "R13"}


# --- R1 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("row", ["pemilih_dpt", "disabilitas"])
def test_r1_row_that_does_not_add_up(row: str) -> None:
    f = clean()
    f[row]["j"] += 1
    (flag,) = only(f, "R1")
    assert flag.field == row
    assert flag.level == rules.ERROR
    mentions(flag, f[row]["l"] + f[row]["p"], f[row]["j"])
    assert flag.en.startswith({"pemilih_dpt": "DPT:", "disabilitas": "disabilitas:"}[row])


@pytest.mark.parametrize("row", ["pengguna_dptb", "pengguna_dpk"])
def test_r1_users_rows(row: str) -> None:
    # J of each users row also feeds R2: move one voter between the J cells of two rows, so
    # the users total still adds up and only L + P = J breaks (in both rows).
    f = clean()
    f["pengguna_dpt"]["j"] -= 1
    f[row]["j"] += 1
    flags = only(f, "R1")
    assert [fl.field for fl in flags] == ["pengguna_dpt", row]
    for fl, r in zip(flags, ["pengguna_dpt", row], strict=True):
        mentions(fl, f[r]["l"] + f[r]["p"], f[r]["j"])


def test_r1_users_total_row_also_breaks_r2() -> None:
    f = clean()
    f["pengguna_total"]["l"] += 1
    flags = flags_of(f)
    assert [(fl.rule, fl.field) for fl in flags] == [
        ("R1", "pengguna_total"),
        ("R2", "pengguna_total.l"),
    ]
    assert flags[0].en.startswith("jumlah pengguna:")


# --- R2 -------------------------------------------------------------------------------------


def test_r2_users_total_is_not_the_sum_of_its_parts() -> None:
    f = clean()
    f["pengguna_dptb"]["l"] += 1
    f["pengguna_dptb"]["j"] += 1
    flags = only(f, "R2")
    assert [fl.field for fl in flags] == ["pengguna_total.l", "pengguna_total.j"]
    tot = f["pengguna_total"]
    parts_l = sum(f[r]["l"] for r in ("pengguna_dpt", "pengguna_dptb", "pengguna_dpk"))
    mentions(flags[0], tot["l"], parts_l)
    assert parts_l == tot["l"] + 1
    assert " L " in flags[0].en
    mentions(flags[1], tot["j"], tot["j"] + 1)


# --- R3 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", entry.CANDIDATE_FORMS)
def test_r3_candidate_votes_do_not_add_up(kind: str) -> None:
    f = clean(kind)
    f["suara"]["2"] += 100  # 72 written as 172
    (flag,) = only(f, "R3")
    assert flag.field == "sah"
    mentions(flag, f["sah"], f["sah"] + 100)
    assert "candidate votes" in flag.en


@pytest.mark.parametrize("kind", entry.PARTY_FORMS)
def test_r3_party_totals_do_not_add_up(kind: str) -> None:
    f = clean(kind, tps=TPS_JABAR)
    f["partai"]["5"]["partai"] += 1
    f["partai"]["5"]["jumlah"] += 1  # R4 still holds for the party
    (flag,) = only(f, "R3")
    assert flag.field == "sah"
    mentions(flag, f["sah"], f["sah"] + 1)
    assert "party totals" in flag.en


# --- R4 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", entry.PARTY_FORMS)
def test_r4_party_total_is_not_party_plus_candidates(kind: str) -> None:
    f = clean(kind, tps=TPS_JABAR)
    f["partai"]["24"]["caleg"]["1"] += 2
    (flag,) = only(f, "R4")
    p = f["partai"]["24"]
    assert flag.field == "partai.24.jumlah"
    mentions(flag, "24", p["jumlah"], p["jumlah"] + 2)


def test_r4_flags_are_in_party_number_order() -> None:
    f = clean("DPR", tps=TPS_JABAR)
    for no in ("24", "3", "10"):
        f["partai"][no]["caleg"]["1"] += 1
    flags = only(f, "R4")
    assert [fl.field for fl in flags] == ["partai.3.jumlah", "partai.10.jumlah", "partai.24.jumlah"]


def test_r3_r4_and_r5_come_out_in_rule_order() -> None:
    f = clean("DPR", tps=TPS_JABAR)
    f["partai"]["1"]["jumlah"] += 1  # breaks R4 and R3
    f["tidak_sah"] += 1  # breaks R5
    assert [fl.rule for fl in flags_of(f)] == ["R3", "R4", "R5"]


# --- R5 -------------------------------------------------------------------------------------


def test_r5_total_is_not_valid_plus_invalid() -> None:
    f = clean()
    f["tidak_sah"] += 4
    (flag,) = only(f, "R5")
    assert flag.field == "total"
    mentions(flag, f["total"], f["sah"] + f["tidak_sah"])


def test_r5_swapped_valid_and_invalid_is_caught_by_r3() -> None:
    f = clean()
    generator.add_mistake(random.Random(0), f, "swap_sah")
    assert "R3" in rules.rule_ids(flags_of(f))


# --- R6 -------------------------------------------------------------------------------------


def test_r6_total_votes_differ_from_users_total() -> None:
    f = clean()
    f["tidak_sah"] += 3
    f["total"] += 3  # R5 still holds
    (flag,) = only(f, "R6")
    assert flag.level == rules.WARNING
    assert flag.field == "total"
    mentions(flag, f["total"], f["pengguna_total"]["j"])


# --- R7 -------------------------------------------------------------------------------------


def test_r7_dpt_users_exceed_dpt() -> None:
    f = clean()
    dpt, used = f["pemilih_dpt"], f["pengguna_dpt"]
    shift = dpt["l"] - used["l"] + 1
    dpt["l"] -= shift  # one fewer on the list than voted from it ...
    dpt["p"] += shift  # ... keeping J (and so R9) unchanged
    (flag,) = only(f, "R7")
    assert flag.field == "pengguna_dpt.l"
    mentions(flag, used["l"], dpt["l"])
    assert used["l"] == dpt["l"] + 1


def test_r7_equal_is_fine() -> None:
    f = clean()
    dpt, used = f["pemilih_dpt"], f["pengguna_dpt"]
    shift = dpt["p"] - used["p"]
    dpt["p"] -= shift
    dpt["l"] += shift
    assert flags_of(f) == []


# --- R8 -------------------------------------------------------------------------------------


def test_r8_ballots_do_not_add_up() -> None:
    f = clean()
    f["surat_suara"]["sisa"] += 2
    (flag,) = only(f, "R8")
    ss = f["surat_suara"]
    assert flag.field == "surat_suara.diterima"
    mentions(flag, ss["diterima"], ss["digunakan"] + ss["rusak"] + ss["sisa"])


def test_r8_r9_need_the_ballot_section() -> None:
    f = clean()
    del f["surat_suara"]
    assert flags_of(f) == []


# --- R9 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dpt_j", "expected", "tolerance"),
    [(0, 0, 2), (1, 2, 2), (50, 51, 2), (100, 102, 2), (101, 104, 2), (200, 204, 2), (201, 206, 3)],
)
def test_r9_expected_ballots_and_tolerance(dpt_j: int, expected: int, tolerance: int) -> None:
    assert rules.expected_ballots(dpt_j) == expected
    assert rules.ballot_tolerance(dpt_j) == tolerance


@pytest.mark.parametrize("seed", SEEDS)
def test_r9_tolerance_edges(seed: int) -> None:
    f0 = clean(seed=seed)
    dpt_j = f0["pemilih_dpt"]["j"]
    expected, tol = rules.expected_ballots(dpt_j), rules.ballot_tolerance(dpt_j)
    assert f0["surat_suara"]["diterima"] == expected
    for drift, flagged in [(tol, False), (-tol, False), (tol + 1, True), (-tol - 1, True)]:
        f = clean(seed=seed)
        f["surat_suara"]["diterima"] += drift
        f["surat_suara"]["sisa"] += drift  # R8 still holds
        if not flagged:
            assert flags_of(f) == [], drift
            continue
        (flag,) = only(f, "R9")
        assert flag.level == rules.WARNING
        assert flag.field == "surat_suara.diterima"
        mentions(flag, expected + drift, expected)


# --- R10 ------------------------------------------------------------------------------------


def test_r10_more_disabled_voters_than_voters() -> None:
    f = clean()
    tot = f["pengguna_total"]
    f["disabilitas"] = {"l": 0, "p": tot["p"] + 1, "j": tot["p"] + 1}
    flags = only(f, "R10")
    assert [fl.field for fl in flags] == ["disabilitas.p"]
    mentions(flags[0], tot["p"] + 1, tot["p"])


def test_r10_without_disabilitas_row() -> None:
    f = clean()
    del f["disabilitas"]
    assert flags_of(f) == []


# --- R11 ------------------------------------------------------------------------------------

TINY = Master.from_json(
    {
        "id2name": {"31": "DKI JAKARTA", "32": "JAWA BARAT"},
        "tps": {"3171011001": [3], "3201011001": [2, 901, 902]},
    }
)


def test_r11_dprd_kabko_in_jakarta() -> None:
    f = clean("DPRD_KABKO", tps=TPS_JABAR)
    f["tps"] = TPS
    (flag,) = only(f, "R11")
    assert flag.field == "form"
    mentions(flag, "DPRD_KABKO", "31")


def test_r11_dprd_kabko_outside_jakarta_is_fine() -> None:
    assert flags_of(clean("DPRD_KABKO", tps=TPS_JABAR)) == []
    assert rules.form_allowed("DPRD_KABKO", TPS_JABAR)
    assert not rules.form_allowed("DPRD_KABKO", TPS)
    for kind in ("PPWP", "DPR", "DPD", "DPRD_PROV"):
        assert rules.form_allowed(kind, TPS)


@pytest.mark.parametrize("tps", ["3171011001001", "3171011001003", "3201011001901"])
def test_r11_tps_in_the_master(tps: str) -> None:
    assert flags_of(clean(tps=tps), TINY) == []


@pytest.mark.parametrize(
    "tps", ["3171011001004", "3171011001000", "3201011001903", "3171011002001", "9999999999001"]
)
def test_r11_tps_not_in_the_master(tps: str) -> None:
    (flag,) = only(clean(tps=tps), "R11", TINY)
    assert flag.field == "tps"
    mentions(flag, tps)


def test_r11_without_a_master_only_the_form_part_runs() -> None:
    assert flags_of(clean(tps="9999999999001")) == []


def test_r11_both_parts_at_once() -> None:
    f = clean("DPRD_KABKO", tps=TPS_JABAR)
    f["tps"] = "3171011001999"
    flags = flags_of(f, TINY)
    assert [(fl.rule, fl.field) for fl in flags] == [("R11", "form"), ("R11", "tps")]


def test_r11_real_master(real_master: Master) -> None:
    assert flags_of(clean(tps="3101011001001"), real_master) == []
    (flag,) = only(clean(tps="3101011001999"), "R11", real_master)
    assert flag.field == "tps"
    f = clean("DPRD_KABKO", tps=TPS_JABAR)
    f["tps"] = "3101011001001"
    (flag,) = only(f, "R11", real_master)
    assert flag.field == "form"
    assert flags_of(clean("DPRD_KABKO", tps="3201011001001"), real_master) == []


# --- flags as data --------------------------------------------------------------------------


def test_flag_to_dict() -> None:
    f = clean()
    f["tidak_sah"] += 1
    (flag,) = flags_of(f)
    d = flag.to_dict()
    assert d == {"rule": "R5", "level": "error", "field": "total", "en": flag.en, "id": flag.id}


def test_rule_ids_are_distinct_and_ordered() -> None:
    f = clean()
    f["pengguna_dptb"]["l"] += 1
    f["pengguna_dptb"]["j"] += 1  # two R2 flags
    f["tidak_sah"] += 1  # R5
    f["pemilih_dpt"]["j"] += 1  # R1
    assert rules.rule_ids(flags_of(f)) == ["R1", "R2", "R5"]


@pytest.mark.parametrize("kind", generator.MISTAKES)
def test_every_generator_mistake_raises_a_flag(kind: str) -> None:
    for seed in SEEDS:
        f = clean(seed=seed)
        generator.add_mistake(random.Random(seed), f, kind)
        assert flags_of(f), (kind, seed)
