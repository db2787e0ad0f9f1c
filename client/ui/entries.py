"""This laptop's signed entries as the page shows them: the list with each entry's state, one
entry with its cells and flags, and which entries of a form and TPS are still live."""

from __future__ import annotations

from typing import Any

from client import scanstate
from client.store import AT_HUB, CONFIRMED, LOCAL, ClientStore
from hub.protocol import entry, record, rules

from . import layout
from .errors import NotFound
from .places import Places
from .scans import Scans


class Entries:
    def __init__(self, store: ClientStore, election: str, places: Places, scans: Scans):
        self.store = store
        self.election = election
        self.places = places
        self.scans = scans
        self._bodies: dict[int, dict[str, Any]] = {}  # seq -> decoded body: never changes

    def body(self, seq: int, raw: bytes) -> dict[str, Any]:
        b = self._bodies.get(seq)
        if b is None:
            b = entry.decode_body(record.decode(raw).body)
            self._bodies[seq] = b
        return b

    async def existing(self, form: str, tps: str) -> list[int]:
        """Seqs of this laptop's live entries for (election, form, tps)."""
        out, dead = [], set()
        async for e in self.store.entries():
            if e.form != form or e.tps != tps or e.election != self.election:
                continue
            body = self.body(e.seq, e.raw)
            if body.get("supersedes"):
                dead.add(body["supersedes"])
            out.append((e.seq, e.hash.hex()))
        return [s for s, h in out if h not in dead]

    async def listing(self, q: str = "", limit: int = 500) -> dict[str, Any]:
        """This laptop's entries, newest first, with their state; ``q`` filters by TPS code
        or place name."""
        marks = await self.store.marks()
        hub = await self.store.hub_info()
        pending = hub is not None and hub.state == "pending"
        where = await scanstate.states_of(self.store.db)
        rows: list[dict[str, Any]] = []
        superseded: dict[str, int] = {}
        async for e in self.store.entries():
            body = self.body(e.seq, e.raw)
            if body.get("supersedes"):
                superseded[body["supersedes"]] = e.seq
            rows.append(
                {
                    "seq": e.seq,
                    "hash": e.hash.hex(),
                    "form": e.form,
                    "tps": e.tps,
                    "flags": list(e.flags),
                    "state": marks.state(e.seq),
                    "entered_at": e.entered_at,
                    "operator": body["operator"],
                    "scans": len(body["scans"]),
                    "scans_state": scanstate.entry_state(body["scans"], where),
                    "supersedes": body.get("supersedes"),
                }
            )
        ql = q.strip().lower()
        out = []
        for r in reversed(rows):
            r["superseded_by"] = superseded.get(r["hash"])
            r["pending"] = pending and r["state"] == AT_HUB
            info = self.places.info(r["tps"])
            r["place"] = info.get("place", r["tps"])
            if ql and ql not in r["tps"] and ql not in str(r["place"]).lower():
                continue
            out.append(r)
            if len(out) >= limit:
                break
        return {"entries": out, "total": len(rows), "pending": pending,
                "states": [LOCAL, AT_HUB, CONFIRMED]}  # fmt: skip

    async def get(self, seq: int, lang: str) -> dict[str, Any]:
        """Entry ``seq`` as the page shows it (labels in ``lang``)."""
        e = await self.store.get(seq)
        if e is None:
            raise NotFound(f"there is no entry #{seq}", f"tidak ada entri #{seq}")
        body = self.body(e.seq, e.raw)
        marks = await self.store.marks()
        rows = rows_of(body)
        return {
            "seq": e.seq,
            "hash": e.hash.hex(),
            "state": marks.state(e.seq),
            "entry": entry.to_json(body),
            "cells": cells_of(body),
            "rows": rows,
            "layout": layout.spec(body["form"], body["tps"], rows, lang),
            "place": self.places.info(body["tps"]),
            "flags": [f.to_dict() for f in rules.check(body)],
            "scans": [self.scans.view(h) for h in body["scans"]],
        }


def cells_of(body: dict[str, Any]) -> dict[str, str]:
    """An entry's numbers as the page's cells."""
    out: dict[str, str] = {}
    for f in (*entry.LPJ_FIELDS, "disabilitas"):
        if f in body:
            for k in layout.LPJ:
                out[f"{f}.{k}"] = str(body[f][k])
    for k, v in body.get("surat_suara", {}).items():
        out[f"surat_suara.{k}"] = str(v)
    for no, v in body.get("suara", {}).items():
        out[f"suara.{no}"] = str(v)
    for no, p in body.get("partai", {}).items():
        out[f"partai.{no}.partai"] = str(p["partai"])
        out[f"partai.{no}.jumlah"] = str(p["jumlah"])
        for c, v in p["caleg"].items():
            out[f"partai.{no}.caleg.{c}"] = str(v)
    for f in entry.TOTAL_FIELDS:
        out[f] = str(body[f])
    return out


def rows_of(body: dict[str, Any]) -> dict[str, Any]:
    """The rows an entry has (its candidates; its parties with their candidates)."""
    if "suara" in body:
        return {"suara": sorted(body["suara"], key=int)}
    partai = {p: sorted(v["caleg"], key=int) for p, v in body["partai"].items()}
    return {"partai": dict(sorted(partai.items(), key=lambda kv: int(kv[0])))}
