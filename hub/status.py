"""The room's status, derived from what the store holds (DESIGN §2.5, §2.7).

``build(view, ...)`` returns the JSON-ready dict that ``c1hub status --json`` prints and
``GET /v1/status`` serves, from a ``StoreView`` (a copy taken on the event loop, so the work can
run in a thread while pushes go on). Stable keys are documented in docs/json-output.md: scripts
read them.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

from hub.memory import DeviceRow, Facts, StoreView
from hub.protocol import state
from hub.protocol.identity import comparison_code
from hub.protocol.ingest import APPROVED, PENDING, REVOKED, Head
from hub.protocol.wilayah import Master

MAX_LISTED = 200
# Devices in a hub on PostgreSQL's status (the root may know tens of thousands): the first ones,
# oldest first; the rest through the paged device list (``GET /v1/devices?limit=&after=``).
STATUS_DEVICES = 100
PAGE_MAX = 1000  # the most devices one page of the device list holds


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One device as ``c1hub devices --json`` and ``GET /v1/devices`` show it (the keys are
    documented in docs/json-output.md)."""

    id: str
    name: str
    role: str
    state: str
    code: str  # the comparison code, "123 456"
    public: str  # hex
    forked: bool
    entries: int
    head: int
    first_seen: int
    last_seen: int
    revoked_after_seq: int | None  # for a revoked device: its last accepted seq

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _INFO_FIELDS}

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> DeviceInfo:
        return cls(**{f.name: obj[f.name] for f in fields(cls)})


_INFO_FIELDS = tuple(f.name for f in fields(DeviceInfo))
_code = lru_cache(maxsize=65536)(comparison_code)  # a hash per device, asked for every status


def device_info(view: StoreView, d: DeviceRow, hub_public: bytes) -> DeviceInfo:
    return DeviceInfo(
        id=d.node_id,
        name=d.name,
        role=d.role,
        state=d.state,
        code=_code(hub_public, d.public),
        public=d.public.hex(),
        forked=d.forked,
        entries=view.counts.get(d.id, 0),
        head=view.heads.get(d.id, Head()).seq,
        first_seen=d.first_seen,
        last_seen=d.last_seen,
        revoked_after_seq=d.revoked_after_seq if d.state == REVOKED else None,
    )


def _listed(d: DeviceRow) -> tuple[int, str]:
    return (d.first_seen, d.node_id)


def device_list(
    view: StoreView,
    hub_public: bytes,
    after: tuple[int, str] | None = None,
    limit: int | None = None,
) -> list[DeviceInfo]:
    """Every device, oldest first (by first seen, then node id); or a page: at most ``limit``
    of them, those listed after the (first seen, node id) ``after``."""
    devices = sorted(view.devices.values(), key=_listed)
    if after is not None:
        devices = devices[bisect.bisect_right(devices, after, key=_listed) :]
    if limit is not None:
        devices = devices[:limit]
    return [device_info(view, d, hub_public) for d in devices]


def build(
    view: StoreView,
    *,
    node_id: str,
    name: str,
    role: str,
    hub_public: bytes,
    master: Master | None,
    now: float,
) -> dict[str, Any]:
    accepted = [f for f in view.facts if view.is_accepted(f)]
    facts = [f.facts for f in accepted]
    states = state.derive(facts)
    live = {h for s in states.values() for h in s.live}
    flag_counts: Counter[str] = Counter()
    for f in accepted:
        if f.flags and f.facts.hash in live:
            flag_counts.update(f.flags)
    reuse = state.scan_reuse(facts)
    mismatch = state.users_mismatch(facts, states)
    if reuse:
        flag_counts["R12"] = len(reuse)
    if mismatch:
        flag_counts["R13"] = len(mismatch)

    per_form: dict[str, dict[str, int]] = {}
    conflicts = []
    for s in states.values():
        c = per_form.setdefault(s.key[1], dict.fromkeys(state.STATUSES, 0))
        c[s.status] += 1
        if s.status == state.CONFLICT:
            conflicts.append(s)
    conflicts.sort(key=lambda s: s.key)
    out = assemble(
        view, hub_public, node_id=node_id, name=name, role=role, now=now,
        accepted=len(accepted), total=len(view.facts), per_form=per_form, flags=flag_counts,
        conflicts=[(s.key, [h.hex() for h in s.live]) for s in conflicts[:MAX_LISTED]],
        scan_reuse=sorted(reuse.items())[:MAX_LISTED],
        users_mismatch=sorted(mismatch.items())[:MAX_LISTED],
    )  # fmt: skip
    if master is not None:
        out["progress"] = progress(master, states)
    if role == "root":
        out["totals"] = totals(accepted, states)
        out["hubs"] = hubs(view)
    return out


def assemble(
    view: StoreView,
    hub_public: bytes,
    *,
    node_id: str,
    name: str,
    role: str,
    now: float,
    accepted: int,
    total: int,
    per_form: Mapping[str, Mapping[str, int]],
    flags: Mapping[str, int],
    conflicts: list[tuple[state.Key, list[str]]],
    scan_reuse: list[tuple[str, list[str]]],
    users_mismatch: list[tuple[tuple[str, str], dict[str, list[int]]]],
) -> dict[str, Any]:
    """The status dict (docs/json-output.md) from what was derived: entries counted and held,
    TPS per form and status, flags per rule (R12, R13 included), the conflicts (key, live
    hashes in hex), scans under several TPS and users totals that differ, each list already
    sorted and cut to ``MAX_LISTED``; the device keys from ``view``."""
    tps = dict.fromkeys(state.STATUSES, 0)
    for c in per_form.values():
        for st in state.STATUSES:
            tps[st] += c[st]
    return {
        "node_id": node_id,
        "name": name,
        "role": role,
        "now": now,
        "entries": {"accepted": accepted, "held": total - accepted, "total": total},
        "tps": tps,
        "tps_by_form": {
            form: {st: c[st] for st in state.STATUSES} for form, c in sorted(per_form.items())
        },
        "flags": dict(sorted(flags.items(), key=lambda kv: int(kv[0][1:]))),
        **device_part(view, hub_public),
        "conflicts": [
            {"election": k[0], "form": k[1], "tps": k[2], "live": live} for k, live in conflicts
        ],
        "scan_reuse": [{"scan": k, "tps": v} for k, v in scan_reuse],
        "users_mismatch": [{"election": k[0], "tps": k[1], "forms": v} for k, v in users_mismatch],
    }


def device_part(view: StoreView, hub_public: bytes) -> dict[str, Any]:
    """The status keys about devices: ``forks``, ``forks_unapproved``, ``devices`` (by
    state) and ``device_list``."""
    room_forks, stray_forks = view.room_forks()
    dev_counts = dict.fromkeys((PENDING, APPROVED, REVOKED), 0)
    for d in view.devices.values():
        dev_counts[d.state] = dev_counts.get(d.state, 0) + 1
    return {
        "forks": room_forks,
        "forks_unapproved": stray_forks,
        "devices": dev_counts,
        "device_list": [d.to_dict() for d in device_list(view, hub_public)],
        "device_list_more": False,  # every device is listed (a hub on SQLite)
    }


def progress(master: Master, states: dict[state.Key, state.TpsState]) -> dict[str, Any]:
    """Entered vs expected TPS per kecamatan, for the kabupaten/kota the room has touched."""
    entered: dict[str, set[str]] = {}
    for k in states:
        entered.setdefault(k[2][:6], set()).add(k[2])
    expected: dict[str, int] = {}
    for p in sorted({kec[:4] for kec in entered}):
        expected.update(master.expected_by_kecamatan(p))
    return progress_rows(master, expected, entered)


def progress_rows(
    master: Master, expected: dict[str, int], entered: Mapping[str, set[str]]
) -> dict[str, Any]:
    """The ``progress`` block from the TPS expected and the TPS entered per kecamatan."""
    rows = []
    for kec in sorted(expected):
        n = len(entered.get(kec, ()))
        rows.append(
            {
                "kecamatan": kec,
                "name": master.name(kec),
                "expected_tps": expected[kec],
                "entered_tps": n,
                "missing_tps": max(expected[kec] - n, 0),
            }
        )
    return {
        "kecamatan": rows,
        "expected_tps": sum(r["expected_tps"] for r in rows),
        "entered_tps": sum(r["entered_tps"] for r in rows),
    }


def no_upstream(store: Any = None, upstream_known: bool = False) -> dict[str, Any]:
    """The ``upstream`` block when no forwarder runs: ``none`` for a hub that forwards nowhere,
    ``stopped`` (with what the store knows) for a hub that has an upstream but is not running.
    ``store``: a ``hub.store.HubStore`` (its upstream bookkeeping), or None."""
    if store is None or not upstream_known:
        return {"state": "none", "url": None, "backlog": 0, "oldest_age_s": None,
                "confirmed": 0, "rejected": 0}  # fmt: skip
    return {
        "state": "stopped",
        "url": None,
        "backlog": store.backlog(),
        "oldest_age_s": None,
        "confirmed": sum(c.seq for c in store.confirmed.values()),
        "rejected": len(store.rejections),
    }


def totals(accepted: list[Facts], states: dict[state.Key, state.TpsState]) -> dict[str, Any]:
    """National totals: votes per candidate (PPWP, DPD) or party (DPR, DPRD) per election and
    form, over TPS whose live entries agree (single or verified). TPS in conflict are left
    out and counted, never guessed."""
    by_hash = {f.facts.hash: f for f in accepted}
    out: dict[str, dict[str, Any]] = {}
    for s in states.values():
        election, form, _tps = s.key
        block = out.setdefault(election, {}).setdefault(
            form, {"tps_counted": 0, "tps_in_conflict": 0, "votes": {}}
        )
        if s.status == state.CONFLICT:
            block["tps_in_conflict"] += 1
            continue
        block["tps_counted"] += 1
        votes: dict[str, int] = block["votes"]
        for item in by_hash[s.live[0]].votes.split(","):
            if item:
                no, v = item.split(":")
                votes[no] = votes.get(no, 0) + int(v)
    for forms in out.values():
        for block in forms.values():
            block["votes"] = dict(sorted(block["votes"].items(), key=lambda kv: int(kv[0])))
    return out


def hubs(view: StoreView) -> list[dict[str, Any]]:
    """Which hubs vouched for which devices, and how many entries those devices sent."""
    rows = []
    for d in view.devices.values():
        if d.role != "hub":
            continue
        vouched = [p for p, by in view.endorsements.items() if d.public in by]
        rows.append(
            {
                "id": d.node_id,
                "name": d.name,
                "state": d.state,
                "devices": len(vouched),
                "entries": sum(
                    view.counts.get(view.devices[p].id, 0) for p in vouched if p in view.devices
                ),
                "last_seen": d.last_seen,
            }
        )
    return rows
