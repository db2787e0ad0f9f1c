"""National results: the shape both stores answer ``results`` with (docs/json-output.md).

Per form under one region (the whole country, a province, a kabupaten/kota or a kecamatan):
votes per candidate (PPWP, DPD) or party total (DPR, DPRD) summed over the TPS whose live
entries agree (single or verified), TPS per status, flags of the live entries counted apart,
and the same votes and TPS per child region. A TPS in conflict adds no votes: it is counted,
never guessed. Candidates or parties with no votes and regions with nothing are left out.

``from_view`` derives it from the SQLite store's in-memory facts (hub.protocol.state, the one
implementation); the PostgreSQL store sums its per-kecamatan aggregates (hub.pg.derived) and
passes its rows through ``finish``, so both give the same dict for the same entries.
"""

from __future__ import annotations

from typing import Any

from hub.memory import StoreView
from hub.protocol import state

LEVELS = {"national": 0, "province": 2, "kabkota": 4, "kecamatan": 6}
CHILD = {"national": "province", "province": "kabkota", "kabkota": "kecamatan"}


def region_width(level: str, code: str) -> int:
    """Length of a region code at ``level``; ValueError for an unknown level or a bad code."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    n = LEVELS[level]
    if len(code) != n or (n and not code.isdigit()):
        raise ValueError(f"a {level} code is {n} digits, not {code!r}")
    return n


def child_width(level: str) -> int | None:
    child = CHILD.get(level)
    return LEVELS[child] if child else None


def _num(k: str) -> tuple[int, str]:
    return (int(k), k) if k.isdigit() else (1 << 30, k)


class Builder:
    """Sums rows into the results dict of one region."""

    def __init__(self, election: str, level: str, code: str):
        self.election, self.level, self.code = election, level, code
        self.child = child_width(level)
        self.forms: dict[str, dict[str, Any]] = {}

    def _block(self, form: str) -> dict[str, Any]:
        b = self.forms.get(form)
        if b is None:
            b = self.forms[form] = {"votes": {}, "tps": dict.fromkeys(state.STATUSES, 0),
                                    "flags": {}, "children": {}}  # fmt: skip
        return b

    def _child(self, b: dict[str, Any], region: str) -> dict[str, Any]:
        c: dict[str, Any] | None = b["children"].get(region)
        if c is None:
            c = b["children"][region] = {"votes": {}, "tps": dict.fromkeys(state.STATUSES, 0)}
        return c

    def votes(self, form: str, region: str, no: str, n: int) -> None:
        b = self._block(form)
        b["votes"][no] = b["votes"].get(no, 0) + n
        if self.child is not None:
            c = self._child(b, region)["votes"]
            c[no] = c.get(no, 0) + n

    def add_votes(self, form: str, region: str, text: str) -> None:
        """Votes written as ``"no:votes,..."`` (a record's ``votes`` column)."""
        blk = self._block(form)
        total = blk["votes"]
        child = self._child(blk, region)["votes"] if self.child is not None else None
        for item in text.split(","):
            no, _, v = item.partition(":")
            n = int(v)
            total[no] = total.get(no, 0) + n
            if child is not None:
                child[no] = child.get(no, 0) + n

    def count(self, form: str, region: str, what: str, n: int) -> None:
        """``what``: a status (single, verified, conflict) or a flag id."""
        b = self._block(form)
        if what in state.STATUSES:
            b["tps"][what] += n
            if self.child is not None:
                self._child(b, region)["tps"][what] += n
        else:
            b["flags"][what] = b["flags"].get(what, 0) + n

    def finish(self) -> dict[str, Any]:
        forms = {}
        for form, b in sorted(self.forms.items()):
            out: dict[str, Any] = {
                "votes": _votes(b["votes"]),
                "tps": b["tps"],
                "flags": dict(
                    sorted(
                        ((k, v) for k, v in b["flags"].items() if v), key=lambda kv: _num(kv[0][1:])
                    )
                ),
                "tps_counted": b["tps"][state.SINGLE] + b["tps"][state.VERIFIED],
            }
            if self.child is not None:
                out["children"] = {
                    r: {"votes": _votes(c["votes"]), "tps": c["tps"]}
                    for r, c in sorted(b["children"].items())
                    if any(c["tps"].values()) or any(c["votes"].values())
                }
            if any(out["tps"].values()) or out["votes"] or out["flags"]:
                forms[form] = out
        return {"election": self.election, "level": self.level, "code": self.code,
                "forms": forms}  # fmt: skip


def _votes(v: dict[str, int]) -> dict[str, int]:
    return dict(sorted(((k, n) for k, n in v.items() if n), key=lambda kv: _num(kv[0])))


def from_view(view: StoreView, election: str, level: str, code: str, width: int) -> dict[str, Any]:
    """The results under ``code`` from the counted entries of a store's snapshot."""
    facts = {
        f.facts.hash: f
        for f in view.facts
        if f.facts.key[0] == election and f.facts.key[2].startswith(code) and view.is_accepted(f)
    }
    b = Builder(election, level, code)
    cw = b.child if b.child is not None else width
    for s in state.derive(f.facts for f in facts.values()).values():
        _election, form, tps = s.key
        region = tps[:cw]
        b.count(form, region, s.status, 1)
        for h in s.live:
            for flag in facts[h].flags:
                b.count(form, region, flag, 1)
        if s.status != state.CONFLICT:
            votes = facts[s.live[0]].votes
            if votes:
                b.add_votes(form, region, votes)
    return b.finish()
