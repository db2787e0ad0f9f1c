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
        returns how many TPS/forms were derived again."""
        touched: set[state.Key] = set()
        for dev, d in devices.items():
            upto = counted_up_to(d)
            if self._upto.get(dev) != upto:
                self._upto[dev] = upto
                touched.update(f.facts.key for f in self._by_dev.get(dev, ()))
        by_dev, by_key = self._by_dev, self._by_key
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
            else:
                here.append(f)
            touched.add(key)
        places: set[tuple[str, str]] = set()
        for key in touched:
            self._rederive(key)
            places.add((key[0], key[2]))
        for place in places:
            self._recheck_users(place)
        return len(touched)

    def _rederive(self, key: state.Key) -> None:
        old = self._parts.pop(key, None)
        if old is not None:
            self._apply(key, old, -1)
        upto = self._upto
        counted = [f for f in self._by_key[key] if f.seq <= upto[f.dev]]
        if not counted:
            return
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
        self._parts[key] = part
        self._apply(key, part, +1)

    def _apply(self, key: state.Key, part: Part, sign: int) -> None:
        """Add (``sign`` +1) or take away (-1) what one TPS/form adds to the figures."""
        election, form, tps = key
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
        flags = self._flags
        for x in part.flags:
            n = flags.get(x, 0) + sign
            if n:
                flags[x] = n
            else:
                del flags[x]
        for scan in part.scans:
            self._count_scan(scan, tps, sign)
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
        per_form = {
            form: {st: c[st] for st in state.STATUSES} for form, c in sorted(self._per_form.items())
        }
        tps = dict.fromkeys(state.STATUSES, 0)
        for c in per_form.values():
            for st, n in c.items():
                tps[st] += n
        listed = status_mod.MAX_LISTED
        conflicts = heapq.nsmallest(listed, self._conflicts)
        reused = heapq.nsmallest(listed, self._reused)
        out: dict[str, Any] = {
            "node_id": node_id,
            "name": name,
            "role": role,
            "now": now,
            "entries": {
                "accepted": self.accepted,
                "held": self.total - self.accepted,
                "total": self.total,
            },
            "tps": tps,
            "tps_by_form": per_form,
            "flags": dict(sorted(flags.items(), key=lambda kv: int(kv[0][1:]))),
            **status_mod.device_part(view, hub_public),
            "conflicts": [
                {
                    "election": k[0],
                    "form": k[1],
                    "tps": k[2],
                    "live": sorted(f.facts.hash.hex() for f in self._parts[k].live),
                }
                for k in conflicts
            ],
            "scan_reuse": [{"scan": s, "tps": sorted(self._scan_tps[s])} for s in reused],
            "users_mismatch": [
                {"election": k[0], "tps": k[1], "forms": self._mismatch[k]}
                for k in heapq.nsmallest(listed, self._mismatch)
            ],
        }
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
