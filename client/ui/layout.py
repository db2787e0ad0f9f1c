"""The paper C.Hasil, section by section, for every form type (pure; no I/O); its words are
``hub.protocol.paper``'s, shared with the hub's console.

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

from hub.protocol import entry, paper
from hub.protocol.paper import (
    ACEH_LOCAL_PARTIES,
    LPJ,
    NATIONAL_PARTIES,
    PARTY_NAMES,
    PPWP_CANDIDATES,
    label,
)

# The paper's words and numbers are the core's (one table for the station and the console).
__all__ = [
    "ACEH_LOCAL_PARTIES", "LPJ", "NATIONAL_PARTIES", "PARTY_NAMES", "PPWP_CANDIDATES",
    "cell_names", "clean_rows", "default_rows", "label", "parties_for", "spec",
]  # fmt: skip


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
                "title": paper.section_title(form, "IV", lang),
                "kind": "candidates",
                "candidates": list(rows.get("suara", [])),
                "row_label": label(which, lang, no="{no}"),
            }
        )
    else:
        parties = []
        for p, caleg in rows.get("partai", {}).items():
            parties.append({"no": p, "title": paper.party_title(p, lang), "caleg": list(caleg)})
        sections.append(
            {
                "id": "IV",
                "title": paper.section_title(form, "IV", lang),
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
