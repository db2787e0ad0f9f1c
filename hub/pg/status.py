"""The status dict of a hub on PostgreSQL (the shape of ``hub.status.build``, docs/json-output.md)
from counters and aggregates: device rows (head, record count), ``kab_counts`` / ``kab_votes``
and the partial index of conflicts. Nothing per entry is read or kept: the cost depends on the
number of devices and kecamatan, not of entries.

R12 (scan reuse) and R13 (users totals differing between the forms of a TPS) come from the
``r12`` and ``r13`` rows that the ingest transaction keeps (``hub.pg.derived``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hub.protocol import state
from hub.protocol.identity import comparison_code
from hub.status import MAX_LISTED, STATUS_DEVICES, DeviceInfo
from hub.storage import NodeInfo

from . import derived
from .schema import Conn

_COLS = (
    "node_id, name, role, state, public, forked, records, head_seq, first_seen, last_seen,"
    " revoked_after_seq, id"
)


def _info(r: Any, hub_public: bytes) -> DeviceInfo:
    return DeviceInfo(
        id=r["node_id"], name=r["name"], role=r["role"], state=r["state"],
        code=comparison_code(hub_public, bytes(r["public"])), public=bytes(r["public"]).hex(),
        forked=r["forked"], entries=int(r["records"]), head=int(r["head_seq"]),
        first_seen=r["first_seen"], last_seen=r["last_seen"],
        revoked_after_seq=r["revoked_after_seq"] if r["state"] == "revoked" else None,
    )  # fmt: skip


async def device_list(
    con: Conn,
    hub_public: bytes,
    public: bytes | None = None,
    *,
    after: tuple[int, str] | None = None,
    limit: int | None = None,
) -> list[DeviceInfo]:
    """Every device, oldest first (by first seen, then node id; the index ``devices_listed``);
    or a page: at most ``limit``, after the (first seen, node id) ``after``; or the one device
    with ``public``."""
    if public is not None:
        rows = await con.fetch(f"SELECT {_COLS} FROM devices WHERE public = $1", public)
    else:
        order = " ORDER BY first_seen, node_id LIMIT $1"  # LIMIT NULL: all of them
        if after is None:
            rows = await con.fetch(f"SELECT {_COLS} FROM devices{order}", limit)
        else:
            rows = await con.fetch(
                f"SELECT {_COLS} FROM devices WHERE (first_seen, node_id) > ($2, $3){order}",
                limit, *after,
            )  # fmt: skip
    if len(rows) <= 100:
        return [_info(r, hub_public) for r in rows]
    # thousands of devices at a root: their comparison codes off the event loop
    return await asyncio.to_thread(lambda: [_info(r, hub_public) for r in rows])


async def forks(con: Conn) -> tuple[int, int]:
    """(forks of devices approved at some point: the alarm, forks of keys never approved:
    evidence, reported apart), as ``hub.memory.room_forks`` counts them."""
    r = await con.fetchrow(
        "SELECT count(*) FILTER (WHERE d.approved_at IS NOT NULL),"
        " count(*) FILTER (WHERE d.approved_at IS NULL) FROM forks f JOIN devices d ON d.id = f.dev"
    )
    assert r is not None
    return int(r[0]), int(r[1])


async def counters(con: Conn) -> tuple[int, int, int, dict[str, int]]:
    """(records stored, forks, forks of keys never approved, devices by state)."""
    records = await con.fetchval("SELECT coalesce(sum(records), 0) FROM devices")
    room, unapproved = await forks(con)
    by_state = {st: int(n) for st, n in await con.fetch(
        "SELECT state, count(*) FROM devices GROUP BY state")}  # fmt: skip
    return int(records), room, unapproved, by_state


async def totals(con: Conn) -> dict[str, Any]:
    """``hub.status.totals`` from the aggregates: per election and form, TPS counted and in
    conflict and votes per candidate or party."""
    out: dict[str, dict[str, Any]] = {}

    def block(election: str, form: str) -> dict[str, Any]:
        b: dict[str, Any] = out.setdefault(election, {}).setdefault(
            form, {"tps_counted": 0, "tps_in_conflict": 0, "votes": {}}
        )
        return b

    for election, form, what, n in await con.fetch(
        "SELECT election, form, what, sum(n) FROM kab_counts"
        " WHERE what IN ('single', 'verified', 'conflict') GROUP BY 1, 2, 3"
    ):
        b = block(election, form)
        b["tps_in_conflict" if what == state.CONFLICT else "tps_counted"] += int(n)
    for election, form, no, v in await con.fetch(
        "SELECT election, form, no, sum(votes) FROM kab_votes GROUP BY 1, 2, 3"
    ):
        block(election, form)["votes"][no] = int(v)
    for forms in out.values():
        for b in forms.values():
            b["votes"] = dict(sorted(b["votes"].items(), key=lambda kv: derived._num(kv[0])))
    return out


async def hubs(con: Conn) -> list[dict[str, Any]]:
    """Which hubs vouched for which devices, and how many entries those devices sent."""
    rows = await con.fetch(
        "SELECT h.node_id, h.name, h.state, h.last_seen, count(d.id), coalesce(sum(d.records), 0)"
        " FROM devices h LEFT JOIN endorsements e ON e.hub = h.public"
        " LEFT JOIN devices d ON d.public = e.device WHERE h.role = 'hub'"
        " GROUP BY h.id ORDER BY h.first_seen, h.id"
    )
    return [
        {"id": r[0], "name": r[1], "state": r[2], "devices": int(r[4]), "entries": int(r[5]),
         "last_seen": r[3]}
        for r in rows
    ]  # fmt: skip


async def progress(con: Conn, node: NodeInfo) -> dict[str, Any]:
    """Entered vs expected TPS per kecamatan, for the kabupaten/kota touched."""
    master = node.master
    assert master is not None
    entered = {
        r[0]: int(r[1])
        for r in await con.fetch(
            "SELECT substr(tps, 1, 6), count(DISTINCT tps) FROM tps_state GROUP BY 1"
        )
    }
    expected: dict[str, int] = {}
    for p in sorted({kec[:4] for kec in entered}):
        expected.update(master.expected_by_kecamatan(p))
    rows = [
        {"kecamatan": kec, "name": master.name(kec), "expected_tps": expected[kec],
         "entered_tps": entered.get(kec, 0),
         "missing_tps": max(expected[kec] - entered.get(kec, 0), 0)}
        for kec in sorted(expected)
    ]  # fmt: skip
    return {
        "kecamatan": rows,
        "expected_tps": sum(r["expected_tps"] for r in rows),
        "entered_tps": sum(r["entered_tps"] for r in rows),
    }


async def build(con: Conn, node: NodeInfo, now: float) -> dict[str, Any]:
    """The status dict (call inside one REPEATABLE READ transaction: one snapshot)."""
    counts = await derived.status_counts(con)
    counts["forks"], counts["forks_unapproved"] = await forks(con)
    listed = await device_list(con, node.public, limit=STATUS_DEVICES + 1)  # the first page
    out: dict[str, Any] = {
        "node_id": node.node_id,
        "name": node.name,
        "role": node.role,
        "now": now,
        **counts,
        "device_list": [d.to_dict() for d in listed[:STATUS_DEVICES]],
        "device_list_more": len(listed) > STATUS_DEVICES,
        "conflicts": await derived.conflicts(con, MAX_LISTED),
        "scan_reuse": [
            {"scan": r[0], "tps": list(r[1])}
            for r in await con.fetch("SELECT scan, tps FROM r12 ORDER BY scan LIMIT $1", MAX_LISTED)
        ],
        "users_mismatch": [
            {"election": r[0], "tps": r[1], "forms": json.loads(r[2])}
            for r in await con.fetch(
                "SELECT election, tps, forms FROM r13 ORDER BY election, tps LIMIT $1", MAX_LISTED
            )
        ],
    }
    if node.master is not None:
        out["progress"] = await progress(con, node)
    if node.role == "root":
        out["totals"] = await totals(con)
        out["hubs"] = await hubs(con)
    return out
