"""What the console's pages show, computed from the shared ``Room`` and a store snapshot.

Pure functions over plain data (no aiohttp): paging, the device and conflict lists, flags by
rule, progress per kecamatan and kelurahan against the master, every record's facts indexed
by (election, form, TPS) for the conflict page, and the cells of readings under the paper's
sections. The heavier ones (``Derived``) run on a worker thread and are cached per room
version, so many viewers cost one computation.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from hub.memory import Facts, StoreView
from hub.protocol import paper, state
from hub.protocol.wilayah import Master

PAGE = 50  # rows per page in every list


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Any]
    number: int  # 1-based
    pages: int
    total: int


def page_of(items: list[Any], number: int, size: int = PAGE) -> Page:
    pages = max(1, -(-len(items) // size))
    n = min(max(number, 1), pages)
    return Page(items[(n - 1) * size : n * size], n, pages, len(items))


def devices(s: dict[str, Any], state_filter: str, q: str, number: int) -> Page:
    """Devices, pending first (they need the coordinator), then by first contact."""
    rows = s["device_list"]
    if state_filter in ("pending", "approved", "revoked"):
        rows = [d for d in rows if d["state"] == state_filter]
    elif state_filter == "forked":
        rows = [d for d in rows if d["forked"]]
    q = q.strip().lower()
    if q:
        rows = [d for d in rows if q in d["name"].lower() or q in d["id"].lower()]
    order = {"pending": 0, "approved": 1, "revoked": 2}
    rows = sorted(rows, key=lambda d: (not d["forked"], order.get(d["state"], 3)))
    return page_of(rows, number)


@dataclass(frozen=True, slots=True)
class FlaggedEntry:
    election: str
    form: str
    tps: str
    device: str
    seq: int
    flags: tuple[str, ...]
    hash: str
    scans: tuple[str, ...]  # the SHA-256 of each page the entry names


@dataclass(frozen=True, slots=True)
class Derived:
    """Per-entry views of one room version (computed on a worker thread)."""

    statuses: dict[state.Key, str]
    flagged: list[FlaggedEntry]  # live entries with flags, by TPS
    by_rule: dict[str, int]
    forms: list[str]
    by_key: dict[state.Key, list[Facts]]  # every stored record's facts per (election, form, TPS)
    seen: int  # how many of the store's records these views were made from


def derive(view: StoreView) -> Derived:
    by_key: dict[state.Key, list[Facts]] = {}
    for f in view.facts:
        by_key.setdefault(f.facts.key, []).append(f)
    accepted = [f for f in view.facts if view.is_accepted(f)]
    states = state.derive(f.facts for f in accepted)
    live = {h for s in states.values() for h in s.live}
    flagged = []
    by_rule: Counter[str] = Counter()
    for f in accepted:
        if f.flags and f.facts.hash in live:
            e, form, tps = f.facts.key
            d = view.devices_by_id[f.dev]
            h = f.facts.hash.hex()
            flagged.append(FlaggedEntry(e, form, tps, d.node_id, f.seq, f.flags, h, f.facts.scans))
            by_rule.update(f.flags)
    flagged.sort(key=lambda x: (x.tps, x.form, x.device, x.seq))
    forms = sorted({k[1] for k in states})
    statuses = {k: s.status for k, s in states.items()}
    return Derived(statuses, flagged, dict(by_rule), forms, by_key, len(view.facts))


def progress(master: Master, d: Derived, form: str, q: str) -> dict[str, Any]:
    """Per kecamatan and kelurahan (desa): TPS expected (ordinary ones in the master), and
    how many of them are single, verified, in conflict or missing for ``form``; regions are
    those of the kabupaten/kota the room has entries for (all of the master when none).
    ``q`` keeps the rows whose code starts with it or whose name contains it."""
    entered: dict[str, Counter[str]] = {}
    for (_e, f, tps), status in d.statuses.items():
        if f == form and master.tps_exists(tps):
            entered.setdefault(tps[:10], Counter())[status] += 1
    kabs = sorted({desa[:4] for desa in entered}) or [""]
    desas = [x for k in kabs for x in master.desa_codes(k)]
    q = q.strip().lower()
    kec_rows: dict[str, dict[str, Any]] = {}
    for desa in desas:
        n = sum(1 for _ in master.tps_codes(desa))
        c = entered.get(desa, Counter())
        done = c["single"] + c["verified"] + c["conflict"]
        row: dict[str, Any] = {"code": desa, "name": master.name(desa), "expected": n,
                               "single": c["single"], "verified": c["verified"],
                               "conflict": c["conflict"], "missing": max(n - done, 0)}  # fmt: skip
        kec = desa[:6]
        k = kec_rows.setdefault(kec, {"code": kec, "name": master.name(kec), "expected": 0,
                                      "single": 0, "verified": 0, "conflict": 0, "missing": 0,
                                      "desa": []})  # fmt: skip
        for key in ("expected", "single", "verified", "conflict", "missing"):
            k[key] += row[key]
        k["desa"].append(row)
    rows = list(kec_rows.values())
    if q:

        def hit(r: dict[str, Any]) -> bool:
            return r["code"].startswith(q[:10]) or q in r["name"].lower()

        for k in rows:
            k["desa"] = [x for x in k["desa"] if hit(x) or hit(k)]
        rows = [k for k in rows if k["desa"]]
    total = {key: sum(k[key] for k in rows)
             for key in ("expected", "single", "verified", "conflict", "missing")}  # fmt: skip
    return {"rows": rows, "total": total}


@dataclass(frozen=True, slots=True)
class Cell:
    """One cell of the paper across several readings."""

    path: str  # the entry JSON path, e.g. ``pemilih_dpt.l`` (kept in ``data-field``)
    label: str  # the paper's words for it, e.g. ``1. Pemilih dalam DPT · L``
    values: list[str]
    differs: bool


@dataclass(frozen=True, slots=True)
class Section:
    """A section of the paper (I–V) with its title and the cells shown of it."""

    id: str
    title: str
    cells: list[Cell]


def sections(form: str, rows: list[tuple[str, list[str], bool]], lang: str) -> list[Section]:
    """``differing`` rows grouped under the paper's sections, each cell with its label
    (``hub.protocol.paper``, the words the operator's station shows)."""
    out: list[Section] = []
    for path, vals, differ in rows:
        where, text = paper.cell_label(form, path, lang)
        if not out or out[-1].id != where:
            title = paper.section_title(form, where, lang) if where else "—"
            out.append(Section(where, title, []))
        out[-1].cells.append(Cell(path, text, vals, differ))
    return out


def differing(bodies: list[dict[str, Any]]) -> list[tuple[str, list[str], bool]]:
    """The cells of several readings side by side: (field path, values, differ?)."""
    flat = [_flatten(b) for b in bodies]
    keys: list[str] = []
    for f in flat:
        keys += [k for k in f if k not in keys]
    skip = ("entered_at", "supersedes", "scans", "operator", "note", "election", "form", "tps")
    out = []
    for k in sorted(keys, key=paper.cell_order):
        if k.split(".")[0] in skip:
            continue
        vals = [str(f.get(k, "—")) for f in flat]
        out.append((k, vals, len(set(vals)) > 1))
    return out


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


def readable_record(raw_hex: str | None) -> dict[str, Any] | str:
    """A record (hex) as its seq, prev and entry body, for reading fork evidence."""
    from hub.protocol import entry, record
    from hub.protocol.errors import ProtocolError

    if not raw_hex:
        return "—"
    try:
        rec = record.decode(bytes.fromhex(raw_hex))
        body = entry.to_json(entry.decode_body(rec.body))
    except (ValueError, ProtocolError) as exc:
        return f"(unreadable: {exc}) {raw_hex[:64]}…"
    return {"seq": rec.seq, "prev": rec.prev.hex()[:16], "hash": rec.hash.hex()[:16], **body}


def neighbours(rows: list[FlaggedEntry], digest: str) -> tuple[int, FlaggedEntry] | None:
    """Where the flagged entry ``digest`` (hash hex) sits in ``rows``: (index, entry)."""
    for i, x in enumerate(rows):
        if x.hash == digest:
            return i, x
    return None


def flag_marks(flags: list[dict[str, str]]) -> dict[str, list[str]]:
    """Which rules point at a cell path: a flag's ``field`` names a cell (``sah``,
    ``pengguna_total.l``) or a row of cells (``pemilih_dpt``: its L, P and J)."""
    out: dict[str, list[str]] = {}
    for f in flags:
        if f["field"]:
            out.setdefault(f["field"], []).append(f["rule"])
    return out


def marked(path: str, marks: dict[str, list[str]]) -> list[str]:
    """The rules that point at ``path`` (its own field, or a row it belongs to)."""
    hit: list[str] = []
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        hit += [r for r in marks.get(".".join(parts[:i]), []) if r not in hit]
    return hit
