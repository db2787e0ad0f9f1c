"""The paper C.Hasil's words: its sections I–V, its rows and the label of every cell, in
Indonesian (as printed) and English. Pure data; the operator's station draws its form from it
(``client/ui/layout.py``) and the coordinator's console names the cells of a conflict or a
flagged entry with it (``hub/console/``), so both say what the paper says.

A cell is named by its entry JSON path (docs/entry-format.md): ``pemilih_dpt.l``,
``surat_suara.diterima``, ``disabilitas.j``, ``suara.2``, ``partai.5.partai``,
``partai.5.caleg.3``, ``partai.5.jumlah``, ``sah``, ``tidak_sah``, ``total``.
``cell_label(form, path, lang)`` gives the section a cell sits in and its row label.
"""

from __future__ import annotations

from typing import NamedTuple

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

# (Indonesian, English) labels: the section titles and row labels of the paper.
LABELS: dict[str, tuple[str, str]] = {
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
    # the L/P/J columns: the paper prints L, P, J
    "l": ("L", "L (men)"),
    "p": ("P", "P (women)"),
    "j": ("J", "J (total)"),
}

SECTIONS = ("I", "II", "III", "IV", "V")


def label(key: str, lang: str, **kw: str) -> str:
    text = LABELS[key][0 if lang == "id" else 1]
    return text.format(**kw) if kw else text


def party_title(no: str, lang: str) -> str:
    """``Partai 5 — NasDem``: the party's number and, for the 2024 ballot, its name."""
    name = PARTY_NAMES.get(no, "")
    return label("party", lang, no=no) + (f" — {name}" if name else "")


def section_title(form: str, section: str, lang: str) -> str:
    """The title of section ``I``..``V`` on the paper of ``form``."""
    if section == "IV":
        key = (
            "IV_ppwp"
            if form == "PPWP"
            else "IV_cand"
            if form in entry.CANDIDATE_FORMS
            else "IV_party"
        )
        return label(key, lang)
    return label(section, lang)


class CellLabel(NamedTuple):
    section: str  # "I".."V", or "" for a path that is not a cell of the paper
    row: str  # the row's label, with its column (L, P, J) when it has one


def cell_label(form: str, path: str, lang: str) -> CellLabel:
    """Where the cell ``path`` sits on the paper of ``form``, and its label (unknown paths are
    given back as they are, in no section)."""
    parts = path.split(".")
    head, rest = parts[0], parts[1:]
    if head in entry.LPJ_FIELDS and len(rest) == 1 and rest[0] in LPJ:
        return CellLabel("I", f"{label(head, lang)} · {label(rest[0], lang)}")
    if head == "surat_suara" and len(rest) == 1 and rest[0] in entry.SURAT_SUARA_KEYS:
        return CellLabel("II", label(rest[0], lang))
    if head == "disabilitas" and len(rest) == 1 and rest[0] in LPJ:
        return CellLabel("III", f"{label(head, lang)} · {label(rest[0], lang)}")
    if head == "suara" and len(rest) == 1:
        return CellLabel("IV", label("pair" if form == "PPWP" else "candidate", lang, no=rest[0]))
    if head == "partai" and len(rest) >= 2:
        no, what = rest[0], rest[1:]
        if what == ["partai"]:
            return CellLabel("IV", f"{party_title(no, lang)} · {label('party_only', lang)}")
        if len(what) == 2 and what[0] == "caleg":
            return CellLabel("IV", f"{party_title(no, lang)} · {label('caleg', lang, no=what[1])}")
        if what == ["jumlah"]:
            return CellLabel("IV", label("jumlah", lang, no=no))
    if head in entry.TOTAL_FIELDS and not rest:
        return CellLabel("V", label(head, lang))
    return CellLabel("", path)


_HEADS = (
    "pemilih_dpt", "pengguna_dpt", "pengguna_dptb", "pengguna_dpk", "pengguna_total",
    "surat_suara", "disabilitas", "suara", "partai", "sah", "tidak_sah", "total",
)  # fmt: skip
_SUBS = ("l", "p", "j", "diterima", "digunakan", "rusak", "sisa", "partai", "caleg", "jumlah")


def cell_order(path: str) -> tuple[int, ...]:
    """Where a cell sits on the paper, as a sort key: sections I-V in order, L P J, numbers by
    value (unknown paths last)."""
    parts = path.split(".")
    key = [_HEADS.index(parts[0]) if parts[0] in _HEADS else len(_HEADS)]
    for p in parts[1:]:
        key.append(int(p) if p.isdigit() else 1000 + (_SUBS.index(p) if p in _SUBS else 99))
    return tuple(key)
