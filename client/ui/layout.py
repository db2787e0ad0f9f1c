"""The paper C.Hasil, section by section, for every form type (pure; no I/O).

``spec(form, tps, rows, lang)`` is what the page draws: sections I–V in the paper's order, each
row with its label and its cells. A cell's name is its entry JSON path (docs/entry-format.md):
``pemilih_dpt.l``, ``surat_suara.diterima``, ``suara.2``, ``partai.5.caleg.3``, ``sah``.

Candidate rows (PPWP and DPD) and each party's candidate rows (DPR, DPRD) are *rows added by
number*: ``rows`` says which exist (remembered from the previous form of the same type and
region, see ``drafts.UiStore.layout``); the operator adds more in the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.protocol import entry

LPJ = ("l", "p", "j")
# The 2024 ballot: national parties 1-17 and 24; Aceh's local parties 18-23 stand for DPRD only.
NATIONAL_PARTIES = [str(n) for n in range(1, 18)] + ["24"]
ACEH_LOCAL_PARTIES = [str(n) for n in range(18, 24)]
PARTY_NAMES = {
    "1": "PKB", "2": "Gerindra", "3": "PDI Perjuangan", "4": "Golkar", "5": "NasDem",
    "6": "Partai Buruh", "7": "Partai Gelora", "8": "PKS", "9": "PKN", "10": "Hanura",
    "11": "Partai Garuda", "12": "PAN", "13": "PBB", "14": "Demokrat", "15": "PSI",
    "16": "Perindo", "17": "PPP", "24": "Partai Ummat",
}  # fmt: skip
PPWP_CANDIDATES = ["1", "2", "3"]  # 2024: three pairs

# (Indonesian, English) labels.
L: dict[str, tuple[str, str]] = {
    "I": ("I. DATA PEMILIH DAN PENGGUNA HAK PILIH", "I. VOTERS AND USERS OF THE RIGHT TO VOTE"),
    "II": ("II. DATA PENGGUNAAN SURAT SUARA", "II. BALLOT PAPERS"),
    "III": ("III. DATA PEMILIH DISABILITAS", "III. DISABLED VOTERS"),
    "IV_cand": ("IV. PEROLEHAN SUARA CALON", "IV. VOTES PER CANDIDATE"),
    "IV_ppwp": ("IV. PEROLEHAN SUARA PASANGAN CALON", "IV. VOTES PER CANDIDATE PAIR"),
    "IV_party": ("IV. PEROLEHAN SUARA PARTAI DAN CALON", "IV. VOTES PER PARTY AND CANDIDATE"),
    "V": ("V. JUMLAH SUARA SAH DAN TIDAK SAH", "V. VALID AND INVALID VOTES"),
    "pemilih_dpt": ("1. Pemilih dalam DPT", "1. Voters on the DPT"),
    "pengguna_dpt": ("2a. Pengguna hak pilih DPT", "2a. Voters who voted, DPT"),
    "pengguna_dptb": ("2b. Pengguna hak pilih DPTb", "2b. Voters who voted, DPTb"),
    "pengguna_dpk": ("2c. Pengguna hak pilih DPK", "2c. Voters who voted, DPK"),
    "pengguna_total": ("2d. Jumlah pengguna hak pilih", "2d. Total who voted"),
    "diterima": ("1. Surat suara diterima (termasuk cadangan 2%)", "1. Ballots received, 2% incl."),
    "digunakan": ("2. Surat suara digunakan", "2. Ballots used"),
    "rusak": ("3. Surat suara rusak/keliru coblos", "3. Ballots damaged or mis-marked"),
    "sisa": ("4. Surat suara tidak digunakan", "4. Ballots unused"),
    "disabilitas": ("Pemilih disabilitas yang menggunakan hak pilih", "Disabled voters who voted"),
    "sah": ("A. Jumlah suara sah", "A. Valid votes"),
    "tidak_sah": ("B. Jumlah suara tidak sah", "B. Invalid votes"),
    "total": ("C. Jumlah suara sah dan tidak sah", "C. Valid and invalid votes"),
    "candidate": ("Calon nomor {no}", "Candidate {no}"),
    "pair": ("Pasangan calon nomor {no}", "Candidate pair {no}"),
    "party": ("Partai {no}", "Party {no}"),
    "party_only": ("Suara partai", "Party votes"),
    "caleg": ("Calon nomor {no}", "Candidate {no}"),
    "jumlah": ("Jumlah suara partai {no}", "Party {no} total"),
    "optional": ("boleh dikosongkan seluruhnya", "may be left wholly empty"),
}


def label(key: str, lang: str, **kw: str) -> str:
    text = L[key][0 if lang == "id" else 1]
    return text.format(**kw) if kw else text


def parties_for(form: str, tps: str) -> list[str]:
    """Party numbers on the paper of ``form`` at ``tps`` (Aceh's DPRD adds its local parties)."""
    parties = list(NATIONAL_PARTIES)
    if form in ("DPRD_PROV", "DPRD_KABKO") and tps.startswith("11"):
        parties = sorted(parties + ACEH_LOCAL_PARTIES, key=int)
    return parties


def default_rows(form: str, tps: str) -> dict[str, Any]:
    """Rows of a form nothing is remembered for."""
    if form == "PPWP":
        return {"suara": list(PPWP_CANDIDATES)}
    if form == "DPD":
        return {"suara": []}
    return {"partai": {p: [] for p in parties_for(form, tps)}}


def clean_rows(form: str, tps: str, rows: Any) -> dict[str, Any]:
    """``rows`` from the page or the store, kept only if well formed (else the defaults)."""

    def numbers(v: Any) -> list[str] | None:
        if not isinstance(v, list) or len(v) > entry.MAX_CANDIDATES:
            return None
        out = [x for x in v if isinstance(x, str) and x.isdigit() and x[0] != "0" and len(x) <= 3]
        return out if len(out) == len(v) and len(set(out)) == len(out) else None

    base = default_rows(form, tps)
    if not isinstance(rows, dict):
        return base
    if "suara" in base:
        got = numbers(rows.get("suara"))
        return {"suara": got} if got is not None else base
    partai = rows.get("partai")
    if not isinstance(partai, dict) or not partai or len(partai) > entry.MAX_PARTIES:
        return base
    out: dict[str, list[str]] = {}
    for p in sorted(partai, key=lambda x: int(x) if str(x).isdigit() else 0):
        if numbers([p]) is None:
            return base
        got = numbers(partai[p])
        out[p] = got[: entry.MAX_CALEG] if got is not None else []
    return {"partai": out}


def spec(form: str, tps: str, rows: dict[str, Any], lang: str) -> dict[str, Any]:
    """What the page draws for ``form``: sections, rows and cell names, in keying order."""

    def lpj(field: str, text: str | None = None) -> dict[str, Any]:
        return {
            "row": field,
            "label": text or label(field, lang),
            "cells": [f"{field}.{k}" for k in LPJ],
            "cols": ["L", "P", "J"],
        }

    def one(name: str, text: str) -> dict[str, Any]:
        return {"row": name, "label": text, "cells": [name], "cols": [""]}

    sections: list[dict[str, Any]] = [
        {"id": "I", "title": label("I", lang), "rows": [lpj(f) for f in entry.LPJ_FIELDS]},
        {
            "id": "II",
            "title": label("II", lang),
            "optional": label("optional", lang),
            "block": "surat_suara",
            "rows": [
                one(f"surat_suara.{k}", label(k, lang))
                for k in ("diterima", "digunakan", "rusak", "sisa")
            ],
        },
        {
            "id": "III",
            "title": label("III", lang),
            "optional": label("optional", lang),
            "block": "disabilitas",
            "rows": [lpj("disabilitas")],
        },
    ]
    if form in entry.CANDIDATE_FORMS:
        which = "pair" if form == "PPWP" else "candidate"
        sections.append(
            {
                "id": "IV",
                "title": label("IV_ppwp" if form == "PPWP" else "IV_cand", lang),
                "kind": "candidates",
                "candidates": list(rows.get("suara", [])),
                "row_label": label(which, lang, no="{no}"),
            }
        )
    else:
        parties = []
        for p, caleg in rows.get("partai", {}).items():
            name = PARTY_NAMES.get(p, "")
            title = label("party", lang, no=p) + (f" — {name}" if name else "")
            parties.append({"no": p, "title": title, "caleg": list(caleg)})
        sections.append(
            {
                "id": "IV",
                "title": label("IV_party", lang),
                "kind": "parties",
                "parties": parties,
                "party_only": label("party_only", lang),
                "caleg_label": label("caleg", lang, no="{no}"),
                "jumlah_label": label("jumlah", lang, no="{no}"),
            }
        )
    sections.append(
        {
            "id": "V",
            "title": label("V", lang),
            "rows": [one(f, label(f, lang)) for f in entry.TOTAL_FIELDS],
        }
    )
    return {"form": form, "tps": tps, "sections": sections}


def cell_names(form: str, rows: Mapping[str, Any]) -> list[str]:
    """Every cell of ``form`` with ``rows``, in keying order (what the page walks with Enter)."""
    names = [f"{f}.{k}" for f in entry.LPJ_FIELDS for k in LPJ]
    names += [f"surat_suara.{k}" for k in entry.SURAT_SUARA_KEYS]
    names += [f"disabilitas.{k}" for k in LPJ]
    if form in entry.CANDIDATE_FORMS:
        names += [f"suara.{n}" for n in rows.get("suara", [])]
    else:
        for p, caleg in rows.get("partai", {}).items():
            names.append(f"partai.{p}.partai")
            names += [f"partai.{p}.caleg.{c}" for c in caleg]
            names.append(f"partai.{p}.jumlah")
    names += list(entry.TOTAL_FIELDS)
    return names
