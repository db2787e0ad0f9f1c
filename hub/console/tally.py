"""The room's status kept up to date entry by entry, for the console's shared room.

``hub.status.build`` derives the status from every entry each time: at 50,000 entries that is
seconds of pure Python in the hub process, which competes with ingest for the interpreter.
``Tally`` gives the same dict (minus the root's totals and hubs) but keeps what it derived:
per (election, form, TPS) the state and what it adds to the counts (accepted entries, status
per form, flags of live entries, scans, whether the TPS was entered), plus the indexes to
undo that. ``update`` takes the entries stored since the last call and the devices as they
are now, and derives again only the TPS those entries touch, and every TPS of a device whose
standing changed (approved, revoked, forked: which of its entries count). A push costs work
in proportion to the push, not to everything held.

The derivation per TPS is the core's own (``hub.protocol.state.derive`` on that TPS's counted
entries), so the result is the same pure function of the set of entries (DESIGN §2.5);
``tests/hub/test_tally.py`` checks it against ``hub.status.build`` over random histories.

Not thread-safe: one caller at a time (the console's ``Live`` runs ``status`` on a worker
thread, under its lock).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hub import status as status_mod
from hub.memory import DeviceRow, Facts, StoreView
from hub.protocol import state
from hub.protocol.wilayah import Master

EVERY = 2**62  # a seq above any log's


def counted_up_to(d: DeviceRow) -> int:
    """The highest seq of ``d``'s entries that is counted: ``StoreView.is_accepted(f)`` is
    ``f.seq <= counted_up_to(d)`` (0: none, while pending or forked; all once approved; up
    to the revocation once revoked)."""
    return d.forward_limit(EVERY)


@dataclass(frozen=True, slots=True)
class Part:
    """What one TPS/form adds to the room's figures."""

    accepted: int
    status: str
    flags: tuple[str, ...]  # of its live entries, each flag once per entry
    scans: tuple[str, ...]  # of its counted entries, each scan once per entry
    live: tuple[Facts, ...]


class Tally:
    """The room's derived figures, updated by the entries added (see the module docstring)."""

    def __init__(self, master: Master | None = None) -> None:
        self.master = master
        self.total = 0
        self.accepted = 0
        self._upto: dict[int, int] = {}  # device -> counted_up_to
        self._rows: dict[int, DeviceRow] = {}  # the rows last seen
        self._by_dev: dict[int, list[Facts]] = {}
        self._by_key: dict[state.Key, list[Facts]] = {}
        self._parts: dict[state.Key, Part] = {}
        self._per_form: dict[str, dict[str, int]] = {}
        self._flags: dict[str, int] = {}
        self._conflicts: set[state.Key] = set()
        self._scan_tps: dict[str, dict[str, int]] = {}  # scan -> TPS -> counted entries
        self._reused: set[str] = set()
        self._forms_at: dict[tuple[str, str], set[str]] = {}  # (election, tps) -> forms
        self._mismatch: dict[tuple[str, str], dict[str, list[int]]] = {}
        self._tps_parts: dict[str, int] = {}  # tps -> TPS/forms with a state
        self._entered: dict[str, set[str]] = {}  # kecamatan -> TPS entered
        self._expected: dict[str, dict[str, int]] = {}  # kabupaten -> expected per kecamatan

    # -- updating ----------------------------------------------------------------------------

    def update(self, devices: Mapping[int, DeviceRow], new: Iterable[Facts]) -> int:
        """Take the entries stored since the last call and the devices as they are now;
        returns how many TPS/forms were derived (again)."""
        touched: set[state.Key] = set()
        rows = self._rows
        for dev, d in devices.items():
            if rows.get(dev) is d:  # rows are frozen, replaced when they change
                continue
            rows[dev] = d
            limit = counted_up_to(d)
            if self._upto.get(dev) != limit:
                self._upto[dev] = limit
                touched.update(f.facts.key for f in self._by_dev.get(dev, ()))
        by_dev, by_key = self._by_dev, self._by_key
        first: list[Facts] = []  # the first entry of a TPS/form: nothing to derive again
        for f in new:
            self.total += 1
            key = f.facts.key
            mine, here = by_dev.get(f.dev), by_key.get(key)
            if mine is None:
                by_dev[f.dev] = [f]
            else:
                mine.append(f)
            if here is None:
                by_key[key] = [f]
                first.append(f)
            else:
                here.append(f)
                touched.add(key)
        places: set[tuple[str, str]] = set()
        upto, added = self._upto, 0
        for f in first:
            key = f.facts.key
            if key in touched or f.seq > upto[f.dev]:  # more came, or it does not count (yet)
                continue
            added += 1
            part = Part(1, state.SINGLE, f.flags, f.facts.scans, (f,))
            self._parts[key] = part
            self._figures(key, part, +1)
            self._place(key, +1)
            places.add((key[0], key[2]))
        for key in touched:
            self._rederive(key)
            places.add((key[0], key[2]))
        for place in places:
            self._recheck_users(place)
        return len(touched) + added

    def _rederive(self, key: state.Key) -> None:
        upto = self._upto
        counted = [f for f in self._by_key[key] if f.seq <= upto[f.dev]]
        part: Part | None = None
        if counted:
            live: tuple[Facts, ...]
            if len(counted) == 1:  # the common case, kept cheap
                st, live = state.SINGLE, (counted[0],)
            else:
                s = state.tps_state(key, [f.facts for f in counted])
                if len(s.live) == len(counted):
                    st, live = s.status, tuple(counted)
                else:
                    alive = set(s.live)
                    st, live = s.status, tuple(f for f in counted if f.facts.hash in alive)
            part = Part(
                accepted=len(counted),
                status=st,
                flags=tuple(x for f in live for x in f.flags),
                scans=tuple(x for f in counted for x in f.facts.scans),
                live=live,
            )
        old = self._parts.pop(key, None)
        if part is not None:
            self._parts[key] = part
        if old is not None and part is not None:
            self._change(key, old, part)
        elif old is not None:
            self._figures(key, old, -1)
            self._place(key, -1)
        elif part is not None:
            self._figures(key, part, +1)
            self._place(key, +1)

    def _figures(self, key: state.Key, part: Part, sign: int) -> None:
        """Add (``sign`` +1) or take away (-1) what one TPS/form adds to the counts."""
        form, tps = key[1], key[2]
        self.accepted += sign * part.accepted
        per = self._per_form.get(form)
        if per is None:
            per = self._per_form[form] = dict.fromkeys(state.STATUSES, 0)
        per[part.status] += sign
        if sign < 0 and not any(per.values()):
            del self._per_form[form]
        if part.status == state.CONFLICT:
            if sign > 0:
                self._conflicts.add(key)
            else:
                self._conflicts.discard(key)
        for x in part.flags:
            self._flag(x, sign)
        for scan in part.scans:
            self._count_scan(scan, tps, sign)

    def _change(self, key: state.Key, old: Part, new: Part) -> None:
        """``_figures`` of ``old`` taken away and of ``new`` added, in fewer steps (the TPS
        keeps a state: where it is entered does not change)."""
        self.accepted += new.accepted - old.accepted
        if old.status != new.status:
            per = self._per_form[key[1]]
            per[old.status] -= 1
            per[new.status] += 1
            if old.status == state.CONFLICT:
                self._conflicts.discard(key)
            elif new.status == state.CONFLICT:
                self._conflicts.add(key)
        if old.flags != new.flags:
            for x in old.flags:
                self._flag(x, -1)
            for x in new.flags:
                self._flag(x, +1)
        if old.scans != new.scans:
            tps, n = key[2], len(old.scans)
            if new.scans[:n] == old.scans:  # entries came after the old ones: their scans
                for scan in new.scans[n:]:
                    self._count_scan(scan, tps, +1)
            else:
                for scan in old.scans:
                    self._count_scan(scan, tps, -1)
                for scan in new.scans:
                    self._count_scan(scan, tps, +1)

    def _flag(self, x: str, sign: int) -> None:
        n = self._flags.get(x, 0) + sign
        if n:
            self._flags[x] = n
        else:
            del self._flags[x]

    def _place(self, key: state.Key, sign: int) -> None:
        """A TPS/form gains (+1) or loses (-1) its state: the forms entered per (election,
        TPS) for R13, the TPS entered per kecamatan for the progress."""
        election, form, tps = key
        place = (election, tps)
        forms = self._forms_at.get(place)
        if sign > 0:
            if forms is None:
                self._forms_at[place] = {form}
            else:
                forms.add(form)
        elif forms is not None:
            forms.discard(form)
            if not forms:
                del self._forms_at[place]
        n = self._tps_parts.get(tps, 0) + sign
        if n:
            self._tps_parts[tps] = n
        else:
            del self._tps_parts[tps]
        if n == 0:
            self._entered[tps[:6]].discard(tps)
        elif n == 1 and sign > 0:
            kec = self._entered.get(tps[:6])
            if kec is None:
                self._entered[tps[:6]] = {tps}
            else:
                kec.add(tps)

    def _count_scan(self, scan: str, tps: str, sign: int) -> None:
        where = self._scan_tps.get(scan)
        if where is None:
            self._scan_tps[scan] = {tps: 1}  # sign is +1: nothing to take away before it came
            return
        n = where.get(tps, 0) + sign
        if n:
            where[tps] = n
        else:
            del where[tps]
            if not where:
                del self._scan_tps[scan]
        if len(where) > 1:
            self._reused.add(scan)
        else:
            self._reused.discard(scan)

    def _recheck_users(self, place: tuple[str, str]) -> None:
        """R13 for one (election, TPS): live entries of different forms, users totals differ
        (``state.users_mismatch``)."""
        self._mismatch.pop(place, None)
        election, tps = place
        forms = self._forms_at.get(place, ())
        if len(forms) < 2:
            return
        seen: dict[str, set[int]] = {}
        for form in forms:
            for f in self._parts[(election, form, tps)].live:
                seen.setdefault(form, set()).add(f.facts.users_total_j)
        if len({u for v in seen.values() for u in v}) > 1:
            self._mismatch[place] = {k: sorted(v) for k, v in sorted(seen.items())}

    # -- the status --------------------------------------------------------------------------

    def status(
        self,
        view: StoreView,
        new: Iterable[Facts],
        *,
        node_id: str,
        name: str,
        role: str,
        hub_public: bytes,
        now: float,
    ) -> dict[str, Any]:
        """Update with ``new`` and the devices of ``view`` (its ``facts`` are not read), then
        the status dict of ``hub.status.build`` (without a root's ``totals`` and ``hubs``)."""
        self.update(view.devices_by_id, new)
        flags: Counter[str] = Counter(self._flags)
        if self._reused:
            flags["R12"] = len(self._reused)
        if self._mismatch:
            flags["R13"] = len(self._mismatch)
        first = status_mod.MAX_LISTED
        out = status_mod.assemble(
            view, hub_public, node_id=node_id, name=name, role=role, now=now,
            accepted=self.accepted, total=self.total, per_form=self._per_form, flags=flags,
            conflicts=[(k, sorted(f.facts.hash.hex() for f in self._parts[k].live))
                       for k in heapq.nsmallest(first, self._conflicts)],
            scan_reuse=[(x, sorted(self._scan_tps[x]))
                        for x in heapq.nsmallest(first, self._reused)],
            users_mismatch=[(k, self._mismatch[k])
                            for k in heapq.nsmallest(first, self._mismatch)],
        )  # fmt: skip
        if self.master is not None:
            out["progress"] = self._progress(self.master)
        return out

    def _progress(self, master: Master) -> dict[str, Any]:
        """``hub.status.progress``: entered vs expected TPS per kecamatan."""
        expected: dict[str, int] = {}
        for kab in sorted({kec[:4] for kec, tps in self._entered.items() if tps}):
            if kab not in self._expected:
                self._expected[kab] = master.expected_by_kecamatan(kab)
            expected.update(self._expected[kab])
        return status_mod.progress_rows(master, expected, self._entered)
