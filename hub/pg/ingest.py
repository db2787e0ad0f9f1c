"""The push transaction of a hub on PostgreSQL: a checked batch stored exactly once per
(origin, seq), forks kept as evidence, heads, derived state and results moved, all in the
caller's transaction (``hub.pg.pool.Db.run``, which runs it again after a serialization
failure, a deadlock or ``Raced``).

Order (docs/scaling.md "Many receivers, one database"): the quota lock when an origin was
never approved (``hub.pg.quotas``); the endorsements the batch carries
(``hub.pg.enrollment.endorse``); the batch's device rows locked in key order
(``SELECT ... FOR UPDATE ORDER BY public``); then everything the planner needs (heads,
states, the bytes held for replayed seqs) read under that lock, so two receivers handed the
same origin at once run one after the other and the second finds the first's records:
duplicates, or a fork detected once. ``hub.protocol.ingest.plan`` decides; the records go in
with one INSERT (``PRIMARY KEY (dev, seq)``: a second record for a seq aborts the
transaction), forks with ``ON CONFLICT DO NOTHING``, heads and counts with one UPDATE.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from hub.memory import DeviceRow, PushResult
from hub.protocol import identity, ingest, state
from hub.protocol.enroll import Endorsement
from hub.protocol.ingest import Head
from hub.protocol.quota import Quotas, Usage

from . import derived, enrollment
from . import quotas as pg_quotas
from .pool import Raced
from .rows import DEVICE_COLS, CheckedLike, device_row, head_of
from .schema import Conn


async def push(
    con: Conn,
    checked: Sequence[CheckedLike],
    now: int,
    endorsements: Sequence[Endorsement],
    quotas: Quotas,
    refuse_unknown: bool,
) -> PushResult:
    """Store a checked batch in the caller's transaction (see the module docstring)."""
    ex_list = [c.ex for c in checked]
    by_index = {c.ex.index: c for c in checked}
    origins = sorted(
        {ex.record.origin for ex in ex_list if ex.record is not None and ex.error is None}
    )
    ledger = await pg_quotas.ledger_for(con, quotas, [*origins, *(e.device for e in endorsements)])
    changed: set[int] = set()
    if endorsements:
        changed |= await enrollment.endorse(con, endorsements, now, ledger)
    rows = await con.fetch(
        f"SELECT {DEVICE_COLS}, records, held_bytes FROM devices"
        " WHERE public = ANY($1::bytea[]) ORDER BY public FOR UPDATE",
        origins,
    )
    devices = {bytes(r["public"]): device_row(r) for r in rows}
    heads = {bytes(r["public"]): head_of(r) for r in rows if r["head_seq"]}
    if ledger is not None:  # what each of them holds, read under its row lock
        ledger.held = {
            bytes(r["public"]): Usage(r["records"], r["held_bytes"])
            for r in rows
            if r["approved_at"] is None
        }
    policies = {p: d.policy() for p, d in devices.items()}
    existing = await held_raws(con, devices, ingest.needed_existing(ex_list, heads))
    plan = ingest.plan(
        ex_list, heads, existing, policies, refuse_unknown=refuse_unknown, ledger=ledger
    )
    new = sorted(plan.new_origins)  # origins kept for the first time: devices now
    if new:
        made = await con.fetch(
            "INSERT INTO devices(public, node_id, first_seen, last_seen)"
            " SELECT p, n, $3, $3 FROM unnest($1::bytea[], $2::text[]) u(p, n)"
            f" ORDER BY p ON CONFLICT (public) DO NOTHING RETURNING {DEVICE_COLS}",
            new, [identity.fingerprint(o) for o in new], now,
        )  # fmt: skip
        if len(made) != len(new):  # another transaction made one meanwhile
            raise Raced()
        devices.update((bytes(r["public"]), device_row(r)) for r in made)

    cols: list[list[Any]] = [[] for _ in range(14)]
    counted_keys: set[state.Key] = set()
    fresh: dict[state.Key, list[derived.Fact]] = {}
    added: dict[bytes, Usage] = {}
    for ex in plan.accepted:
        rec, c = ex.record, by_index[ex.index]
        ef = c.facts
        assert rec is not None and ef is not None
        d = devices[rec.origin]
        row = (d.id, rec.seq, rec.hash, rec.raw, now, *ef.key, c.flags, ef.users_total_j,
               ef.numbers, ef.supersedes, ",".join(ef.scans), c.votes)  # fmt: skip
        for i, v in enumerate(row):
            cols[i].append(v)
        added[rec.origin] = added.get(rec.origin, Usage()) + Usage(1, len(rec.raw))
        if rec.seq <= d.forward_limit(rec.seq):
            counted_keys.add(ef.key)
            origin = d.id.to_bytes(8, "big")  # as derived state reads it back
            f = state.EntryFacts(rec.hash, origin, ef.key, ef.numbers, ef.supersedes,
                                 ef.users_total_j, ef.scans)  # fmt: skip
            fresh.setdefault(ef.key, []).append(derived.Fact(f, c.votes, c.flags))
    if plan.accepted:
        await con.execute(
            "INSERT INTO records(dev, seq, hash, raw, received_at, election, form, tps,"
            " flags, users_j, numbers, supersedes, scans, votes)"
            " SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[],"
            " $5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[], $10::int[],"
            " $11::bytea[], $12::bytea[], $13::text[], $14::text[])",
            *cols,
        )
    forked: set[int] = set()
    for ex, held in plan.forks:
        assert ex.record is not None
        d = devices[ex.record.origin]
        await con.execute(
            "INSERT INTO forks(dev, seq, raw, held_raw, detected_at)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            d.id, ex.record.seq, ex.record.raw, held, now,
        )  # fmt: skip
        forked.add(d.id)
    touched = sorted({o.origin for o in plan.outcomes if o.origin is not None} & devices.keys())
    if touched:
        final = {o: plan.heads.get(o, heads.get(o, Head())) for o in touched}
        more = [added.get(o, Usage()) for o in touched]
        await con.execute(
            "UPDATE devices d SET head_seq = u.s, head_hash = u.h, records = d.records + u.n,"
            " held_bytes = d.held_bytes + CASE WHEN d.approved_at IS NULL THEN u.b ELSE 0"
            " END, forked = d.forked OR u.f, last_seen = $7"
            " FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bigint[],"
            " $5::bigint[], $6::boolean[]) u(id, s, h, n, b, f) WHERE d.id = u.id",
            [devices[o].id for o in touched], [final[o].seq for o in touched],
            [final[o].hash for o in touched], [m.records for m in more],
            [m.bytes for m in more], [devices[o].id in forked for o in touched], now,
        )  # fmt: skip
    changed |= forked
    if changed:  # a device's counted records changed: derive its keys from the database
        counted_keys |= await derived.keys_of_devices(con, changed)
        fresh = {}
    await derived.refresh(con, counted_keys, fresh)
    out_heads = {o: final[o] for o in touched} if touched else {}
    rows_now = {
        o: dataclasses.replace(devices[o], last_seen=now,
                               forked=devices[o].forked or devices[o].id in forked)
        for o in touched
    }  # fmt: skip
    return PushResult(plan, out_heads, rows_now, new)


async def held_raws(
    con: Conn,
    devices: dict[bytes, DeviceRow],
    pairs: list[tuple[bytes, int]],
) -> dict[tuple[bytes, int], bytes]:
    """Raw bytes held for (origin, seq) pairs, in one query (replays are the normal
    recovery path: they must not cost a query per record)."""
    if not pairs:
        return {}
    public_of = {d.id: p for p, d in devices.items()}
    rows = await con.fetch(
        "SELECT r.dev, r.seq, r.raw FROM records r JOIN unnest($1::bigint[], $2::bigint[])"
        " u(dev, seq) ON r.dev = u.dev AND r.seq = u.seq",
        [devices[o].id for o, _ in pairs], [s for _, s in pairs],
    )  # fmt: skip
    return {(public_of[r[0]], r[1]): bytes(r[2]) for r in rows}
