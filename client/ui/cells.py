"""From the cells typed in the page to the entry JSON, and the live flags (no rule logic here).

A cell is text of 0-3 digits; an **empty cell is not a zero** (the operator types 0). ``entry``
builds the JSON entry (docs/entry-format.md) from the cells: an empty cell is left out, so
``entry.parse`` names it as missing when the form is saved; an optional block (``surat_suara``,
``disabilitas``) whose cells are all empty is left out whole.

``live_flags`` gives the flags of ``hub.protocol.rules.check`` (the project's one
implementation of R1–R11) that the filled cells already decide: it checks the form twice, with
every empty cell read as 0 and then as 999, and keeps the flags that come out the same both
times. Every flag message carries the numbers its rule looked at, so a flag that depends on an
empty cell differs between the two readings and is not shown yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.protocol import entry, rules
from hub.protocol.errors import ProtocolError

from .layout import LPJ, cell_names

MAX_DIGITS = 3


class CellError(ValueError):
    """A cell whose text is not 0-3 digits."""

    def __init__(self, name: str, text: str):
        super().__init__(f"{name}: {text!r} is not a number 0..999")
        self.name = name
        self.text = text


def value(name: str, text: Any) -> int | None:
    """The number in a cell (None when empty); CellError for anything but 0-3 digits."""
    if text is None or text == "":
        return None
    if not isinstance(text, str) or not text.isascii() or not text.isdigit():
        raise CellError(name, str(text))
    if len(text) > MAX_DIGITS:
        raise CellError(name, text)
    return int(text)


def numbers(form: str, rows: Mapping[str, Any], cells: Mapping[str, Any]) -> dict[str, int | None]:
    """Every cell of the form (from ``rows``) -> its number or None; cells not on the form are
    ignored."""
    return {n: value(n, cells.get(n)) for n in cell_names(form, rows)}


def build(
    form: str,
    tps: str,
    rows: Mapping[str, Any],
    cells: Mapping[str, Any],
    *,
    election: str,
    operator: str,
    note: str = "",
    scans: list[str] | None = None,
    supersedes: str | None = None,
    fill: int | None = None,
) -> dict[str, Any]:
    """The JSON entry for these cells. With ``fill``, empty cells read as ``fill`` (live checks)."""
    nums = numbers(form, rows, cells)

    def get(name: str) -> int | None:
        v = nums[name]
        return fill if v is None else v

    def put(obj: dict[str, Any], key: str, name: str) -> None:
        v = get(name)
        if v is not None:
            obj[key] = v

    out: dict[str, Any] = {"election": election, "form": form, "tps": tps}
    for f in entry.LPJ_FIELDS:
        row: dict[str, int] = {}
        for k in LPJ:
            put(row, k, f"{f}.{k}")
        out[f] = row
    ss_names = [f"surat_suara.{k}" for k in entry.SURAT_SUARA_KEYS]
    if any(nums[n] is not None for n in ss_names):
        ss: dict[str, int] = {}
        for k in entry.SURAT_SUARA_KEYS:
            put(ss, k, f"surat_suara.{k}")
        out["surat_suara"] = ss
    if any(nums[f"disabilitas.{k}"] is not None for k in LPJ):
        dis: dict[str, int] = {}
        for k in LPJ:
            put(dis, k, f"disabilitas.{k}")
        out["disabilitas"] = dis
    if form in entry.CANDIDATE_FORMS:
        suara: dict[str, int] = {}
        for no in rows.get("suara", []):
            put(suara, no, f"suara.{no}")
        out["suara"] = suara
    else:
        partai: dict[str, Any] = {}
        for p, caleg in rows.get("partai", {}).items():
            block: dict[str, Any] = {"caleg": {}}
            put(block, "partai", f"partai.{p}.partai")
            for c in caleg:
                put(block["caleg"], c, f"partai.{p}.caleg.{c}")
            put(block, "jumlah", f"partai.{p}.jumlah")
            partai[p] = block
        out["partai"] = partai
    for f in entry.TOTAL_FIELDS:
        put(out, f, f)
    out["scans"] = list(scans or [])
    out["operator"] = operator
    out["note"] = note
    if supersedes:
        out["supersedes"] = supersedes
    return out


def empty_cell(form: str, rows: Mapping[str, Any], cells: Mapping[str, Any]) -> str | None:
    """The first required cell still empty, in keying order (optional blocks left wholly empty
    are fine); None when the form is complete."""
    nums = numbers(form, rows, cells)
    blocks = {"surat_suara": False, "disabilitas": False}
    for n, v in nums.items():
        b = n.split(".", 1)[0]
        if b in blocks and v is not None:
            blocks[b] = True
    for n, v in nums.items():
        b = n.split(".", 1)[0]
        if v is None and (b not in blocks or blocks[b]):
            return n
    return None


def live_flags(
    form: str,
    tps: str,
    rows: Mapping[str, Any],
    cells: Mapping[str, Any],
    master: rules.TpsMaster | None,
) -> list[rules.Flag]:
    """The flags (R1–R11, from ``rules.check``) that the filled cells already decide."""
    runs = []
    for fill in (0, entry.MAX_CELL):
        obj = build(form, tps, rows, cells, election="live-check", operator="-", fill=fill)
        if form in entry.CANDIDATE_FORMS and not obj["suara"]:
            obj["suara"] = {"1": fill}  # no candidate rows yet: checks of the rest still run
        if form in entry.PARTY_FORMS and not obj["partai"]:
            obj["partai"] = {"1": {"partai": fill, "caleg": {}, "jumlah": fill}}
        try:
            parsed = entry.parse(obj)
        except ProtocolError:
            return []
        runs.append(rules.check(parsed, master))
    second = {(f.rule, f.field, f.en) for f in runs[1]}
    return [f for f in runs[0] if (f.rule, f.field, f.en) in second]
