"""Validation rules R1–R11: flags computed from an entry body alone.

A flag is not a rejection: the entry transcribes the paper, including the paper's own
arithmetic mistakes. Every node recomputes flags from the body; nobody trusts a sender's flags.
R12 and R13 need several entries and live in ``state.py``. R11 needs the polling-station master
(``wilayah.Master``); without one, only the form-type-for-region part runs.

Each flag has an Indonesian message (``id``, shown to operators) and an English one (``en``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .entry import CANDIDATE_FORMS, LPJ_FIELDS

ERROR = "error"
WARNING = "warning"

RULES: dict[str, tuple[str, str, str]] = {
    # id: (level, English summary, Indonesian summary)
    "R1": (ERROR, "L + P = J in every row", "L + P = J di setiap baris"),
    "R2": (
        ERROR,
        "users total = DPT + DPTb + DPK users",
        "jumlah pengguna = pengguna DPT + DPTb + DPK",
    ),
    "R3": (ERROR, "valid votes = sum of votes", "suara sah = jumlah perolehan suara"),
    "R4": (
        ERROR,
        "party total = party votes + candidate votes",
        "jumlah partai = suara partai + suara caleg",
    ),
    "R5": (ERROR, "total = valid + invalid", "total = sah + tidak sah"),
    "R6": (WARNING, "total votes = users total", "total suara = jumlah pengguna hak pilih"),
    "R7": (ERROR, "DPT users <= DPT", "pengguna DPT <= DPT"),
    "R8": (
        ERROR,
        "ballots received = used + damaged + unused",
        "surat suara diterima = digunakan + rusak + sisa",
    ),
    "R9": (WARNING, "ballots received ≈ DPT + 2%", "surat suara diterima ≈ DPT + 2%"),
    "R10": (ERROR, "disabled voters <= users", "pemilih disabilitas <= pengguna hak pilih"),
    "R11": (ERROR, "TPS and form exist in the master", "TPS dan jenis formulir terdaftar"),
    "R12": (ERROR, "one scan under two TPS", "satu pindaian di dua TPS"),
    "R13": (
        WARNING,
        "users totals differ between forms of one TPS",
        "jumlah pengguna berbeda antar formulir satu TPS",
    ),
}

_LPJ_LABEL = {
    "pemilih_dpt": "DPT",
    "pengguna_dpt": "pengguna DPT",
    "pengguna_dptb": "pengguna DPTb",
    "pengguna_dpk": "pengguna DPK",
    "pengguna_total": "jumlah pengguna",
    "disabilitas": "disabilitas",
}


@dataclass(frozen=True, slots=True)
class Flag:
    rule: str
    field: str
    en: str
    id: str

    @property
    def level(self) -> str:
        return RULES[self.rule][0]

    def to_dict(self) -> dict[str, str]:
        return {
            "rule": self.rule,
            "level": self.level,
            "field": self.field,
            "en": self.en,
            "id": self.id,
        }


class TpsMaster(Protocol):
    def tps_exists(self, tps: str) -> bool: ...


# DKI Jakarta (31) elects no DPRD kabupaten/kota.
_NO_KABKO_PROVINCES = frozenset({"31"})


def form_allowed(form: str, tps: str) -> bool:
    return not (form == "DPRD_KABKO" and tps[:2] in _NO_KABKO_PROVINCES)


def check(body: Mapping[str, Any], master: TpsMaster | None = None) -> list[Flag]:
    """All single-entry flags of ``body`` (a parsed entry), in rule order."""
    flags: list[Flag] = []
    add = flags.append

    # R1: L + P = J.
    for f in (*LPJ_FIELDS, "disabilitas"):
        row = body.get(f)
        if row is not None and row["l"] + row["p"] != row["j"]:
            lab = _LPJ_LABEL[f]
            s = row["l"] + row["p"]
            add(
                Flag(
                    "R1",
                    f,
                    f"{lab}: L + P = {s}, but J = {row['j']}",
                    f"{lab}: L + P = {s}, tetapi J = {row['j']}",
                )
            )

    # R2: users total = DPT + DPTb + DPK users, for each of L, P, J.
    tot = body["pengguna_total"]
    for k in ("l", "p", "j"):
        s = body["pengguna_dpt"][k] + body["pengguna_dptb"][k] + body["pengguna_dpk"][k]
        if s != tot[k]:
            K = k.upper()
            add(
                Flag(
                    "R2",
                    f"pengguna_total.{k}",
                    f"users total {K} = {tot[k]}, but DPT + DPTb + DPK users = {s}",
                    f"jumlah pengguna {K} = {tot[k]}, tetapi DPT + DPTb + DPK = {s}",
                )
            )

    # R3 and R4: votes.
    sah = body["sah"]
    if body["form"] in CANDIDATE_FORMS:
        s = sum(body["suara"].values())
        what_en, what_id = "candidate votes", "suara calon"
    else:
        s = sum(p["jumlah"] for p in body["partai"].values())
        what_en, what_id = "party totals", "jumlah suara partai"
        for no, p in sorted(body["partai"].items(), key=lambda kv: int(kv[0])):
            ps = p["partai"] + sum(p["caleg"].values())
            if ps != p["jumlah"]:
                add(
                    Flag(
                        "R4",
                        f"partai.{no}.jumlah",
                        f"party {no}: total {p['jumlah']}, but party + candidate votes = {ps}",
                        f"partai {no}: jumlah {p['jumlah']}, tetapi suara partai + caleg = {ps}",
                    )
                )
    if s != sah:
        add(
            Flag(
                "R3",
                "sah",
                f"valid votes = {sah}, but the {what_en} add up to {s}",
                f"suara sah = {sah}, tetapi {what_id} berjumlah {s}",
            )
        )
    flags.sort(key=lambda fl: int(fl.rule[1:]))

    # R5: total = valid + invalid.
    s = sah + body["tidak_sah"]
    if s != body["total"]:
        add(
            Flag(
                "R5",
                "total",
                f"total = {body['total']}, but valid + invalid = {s}",
                f"total = {body['total']}, tetapi sah + tidak sah = {s}",
            )
        )

    # R6: total votes = users total J.
    if body["total"] != tot["j"]:
        add(
            Flag(
                "R6",
                "total",
                f"total votes {body['total']} ≠ users total J {tot['j']}",
                f"total suara {body['total']} ≠ jumlah pengguna J {tot['j']}",
            )
        )

    # R7: DPT users <= DPT.
    for k in ("l", "p", "j"):
        u, d = body["pengguna_dpt"][k], body["pemilih_dpt"][k]
        if u > d:
            K = k.upper()
            add(
                Flag(
                    "R7",
                    f"pengguna_dpt.{k}",
                    f"DPT users {K} = {u} exceeds DPT {K} = {d}",
                    f"pengguna DPT {K} = {u} melebihi DPT {K} = {d}",
                )
            )

    ss = body.get("surat_suara")
    if ss is not None:
        # R8: received = used + damaged + unused.
        s = ss["digunakan"] + ss["rusak"] + ss["sisa"]
        if s != ss["diterima"]:
            add(
                Flag(
                    "R8",
                    "surat_suara.diterima",
                    f"ballots received {ss['diterima']}, but used + damaged + unused = {s}",
                    f"surat suara diterima {ss['diterima']}, tetapi digunakan + rusak + sisa = {s}",
                )
            )
        # R9: received is about DPT + 2% reserve.
        expected = expected_ballots(body["pemilih_dpt"]["j"])
        tolerance = ballot_tolerance(body["pemilih_dpt"]["j"])
        if abs(ss["diterima"] - expected) > tolerance:
            add(
                Flag(
                    "R9",
                    "surat_suara.diterima",
                    f"ballots received {ss['diterima']}, expected about {expected} (DPT + 2%)",
                    f"surat suara diterima {ss['diterima']}, seharusnya sekitar {expected}"
                    " (DPT + 2%)",
                )
            )

    # R10: disabled voters <= users total.
    dis = body.get("disabilitas")
    if dis is not None:
        for k in ("l", "p", "j"):
            if dis[k] > tot[k]:
                K = k.upper()
                add(
                    Flag(
                        "R10",
                        f"disabilitas.{k}",
                        f"disabled voters {K} = {dis[k]} exceeds users total {K} = {tot[k]}",
                        f"pemilih disabilitas {K} = {dis[k]} melebihi jumlah pengguna {K}"
                        f" = {tot[k]}",
                    )
                )

    # R11: the TPS exists and the form exists for its region.
    if not form_allowed(body["form"], body["tps"]):
        add(
            Flag(
                "R11",
                "form",
                f"{body['form']} is not contested in province {body['tps'][:2]}",
                f"{body['form']} tidak ada di provinsi {body['tps'][:2]}",
            )
        )
    if master is not None and not master.tps_exists(body["tps"]):
        add(
            Flag(
                "R11",
                "tps",
                f"TPS {body['tps']} is not in the polling-station master",
                f"TPS {body['tps']} tidak terdaftar di data wilayah",
            )
        )
    return flags


def expected_ballots(dpt_j: int) -> int:
    """DPT plus the 2% reserve, rounded up."""
    return dpt_j + math.ceil(dpt_j * 2 / 100)


def ballot_tolerance(dpt_j: int) -> int:
    """How far R9 lets the received count drift: 1% of DPT, at least 2 ballots."""
    return max(2, math.ceil(dpt_j / 100))


def rule_ids(flags: list[Flag]) -> list[str]:
    """Distinct rule ids of ``flags``, in rule order."""
    seen: list[str] = []
    for f in flags:
        if f.rule not in seen:
            seen.append(f.rule)
    return sorted(seen, key=lambda r: int(r[1:]))
