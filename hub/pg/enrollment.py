"""Devices at a hub on PostgreSQL: enrollment and the trust cascades (approve, revoke, the
endorsements a push carries), each decided by ``hub.protocol.trust`` over the rows it reads
under row locks, inside the caller's transaction (``hub.pg.pool.Db.run``).

``book`` locks the device rows of a cascade in key order, so two cascades (or a cascade and
a push carrying endorsements) over the same devices run one after the other; a new device
within ``max_pending_devices`` is decided after the one row of ``quota_lock``
(``hub.pg.quotas``). Derived state and results of every device of a cascade move in the
same transaction (``hub.pg.derived``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from hub.memory import DeviceRow
from hub.protocol import identity, trust
from hub.protocol.enroll import Endorsement
from hub.protocol.ingest import APPROVED
from hub.protocol.quota import Ledger, Quotas
from hub.transaction import enroll_again

from . import derived
from . import quotas as pg_quotas
from .rows import DEVICE_COLS, device_row
from .schema import Conn

log = logging.getLogger(__name__)


async def enroll(
    con: Conn, public: bytes, name: str, role: str, now: int, quotas: Quotas
) -> DeviceRow:
    """First contact puts a device in pending; a known device keeps its state and its role
    (it may give itself a name once; another role: ``role_change``, ``trust.enroll``)."""
    mine = f"SELECT {DEVICE_COLS} FROM devices WHERE public = $1 FOR UPDATE"
    old = await con.fetchrow(mine, public)
    if old is None:  # a new device: within max_pending_devices (QuotaError: 429)
        ledger = await pg_quotas.lock(con, quotas)
        old = await con.fetchrow(mine, public)  # made meanwhile?
        if old is None:
            ledger.check_new_device()
    if old is not None:
        enroll_again(device_row(old), name, role)  # role_change: refused, logged
    r = await con.fetchrow(
        "INSERT INTO devices(public, node_id, name, role, first_seen, last_seen)"
        " VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (public) DO UPDATE SET"
        " last_seen = EXCLUDED.last_seen,"
        " name = CASE WHEN devices.name = '' THEN EXCLUDED.name ELSE devices.name END"
        f" RETURNING {DEVICE_COLS}",
        public, identity.fingerprint(public), name, role, now,
    )  # fmt: skip
    assert r is not None
    return device_row(r)


async def approve(con: Conn, public: bytes, now: int, endorsement: bytes | None) -> DeviceRow:
    """Approve a device (with this node's ``endorsement`` of it) and, transitively, every
    pending device an approved hub vouches for (``trust.approve``)."""
    devices, ends, _heads = await book(con, [public])
    if public not in devices:
        raise KeyError(identity.fingerprint(public))
    for step in trust.approve(public, devices, ends):
        await set_approved(con, devices[step.public], now,
                           endorsement if step.via is None else None)  # fmt: skip
    return await after_state_change(con, public, devices)


async def revoke(con: Conn, public: bytes, now: int) -> DeviceRow:
    """Revoke a device after its current head and, for a hub, every device approved here
    only through that hub's word (``trust.revoke``)."""
    devices, ends, heads = await book(con, [public])
    if public not in devices:
        raise KeyError(identity.fingerprint(public))
    for step in trust.revoke(public, devices, ends, heads):
        d = devices[step.public]
        await con.execute(
            "UPDATE devices SET state = 'revoked', revoked_at = $2,"
            " revoked_after_seq = $3 WHERE id = $1",
            d.id, now, step.after_seq,
        )  # fmt: skip
        if step.via is not None:
            log.warning("revoking %s %s too: it was approved only through hub %s",
                        d.role, d.node_id, devices[step.via].node_id)  # fmt: skip
    return await after_state_change(con, public, devices)


async def after_state_change(
    con: Conn, public: bytes, devices: dict[bytes, DeviceRow]
) -> DeviceRow:
    """Move derived state and results for every device of the cascade; the row now."""
    ids = [d.id for d in devices.values()]
    await derived.refresh(con, await derived.keys_of_devices(con, ids))
    r = await con.fetchrow(f"SELECT {DEVICE_COLS} FROM devices WHERE public = $1", public)
    assert r is not None
    return device_row(r)


async def set_approved(con: Conn, d: DeviceRow, now: int, endorsement: bytes | None) -> None:
    await con.execute(
        "UPDATE devices SET state = 'approved', approved_at = $2,"
        " endorsement = COALESCE($3, endorsement), revoked_at = NULL WHERE id = $1",
        d.id, now, endorsement,
    )  # fmt: skip


async def book(
    con: Conn, seeds: Iterable[bytes]
) -> tuple[dict[bytes, DeviceRow], dict[bytes, dict[bytes, bytes]], dict[bytes, int]]:
    """What ``hub.protocol.trust`` needs to decide a cascade from ``seeds``, read under
    row locks: the devices the seeds vouch for, transitively, every hub vouching for any
    of them, and the endorsements between them. The device rows are locked in key order,
    so two cascades (or a cascade and a push carrying endorsements) over the same devices
    run one after the other. Returns (devices, endorsements, heads)."""
    known: set[bytes] = set(seeds)
    frontier = set(known)
    while frontier:  # down: the devices the hubs found so far vouch for
        rows = await con.fetch(
            "SELECT device FROM endorsements WHERE hub = ANY($1::bytea[])", list(frontier)
        )
        frontier = {bytes(r[0]) for r in rows} - known
        known |= frontier
    ends: dict[bytes, dict[bytes, bytes]] = {}
    for dev, hub, raw in await con.fetch(  # up: every hub vouching for one of them
        "SELECT device, hub, raw FROM endorsements WHERE device = ANY($1::bytea[])",
        list(known),
    ):
        ends.setdefault(bytes(dev), {})[bytes(hub)] = bytes(raw)
    wanted = known | {h for by in ends.values() for h in by}
    rows = await con.fetch(
        f"SELECT {DEVICE_COLS} FROM devices WHERE public = ANY($1::bytea[])"
        " ORDER BY public FOR UPDATE",
        list(wanted),
    )
    devices = {bytes(r["public"]): device_row(r) for r in rows}
    heads = {bytes(r["public"]): int(r["head_seq"]) for r in rows}
    return devices, ends, heads


async def endorse(
    con: Conn, endorsements: Sequence[Endorsement], now: int, ledger: Ledger | None
) -> set[int]:
    """Take the endorsements that chain to a hub known here (``trust.accept_endorsements``,
    within the pending quota when there is a ``ledger``). Returns the ids of devices whose
    state changed."""
    devices, ends, _heads = await book(con, {p for e in endorsements for p in (e.hub, e.device)})
    changed: set[int] = set()
    for step in trust.accept_endorsements(endorsements, devices, ends, ledger):
        if isinstance(step, trust.Keep):
            e = step.endorsement
            await con.execute(
                "INSERT INTO endorsements(device, hub, raw, received_at) VALUES ($1,$2,$3,$4)"
                " ON CONFLICT (device, hub) DO UPDATE SET raw = EXCLUDED.raw,"
                " received_at = EXCLUDED.received_at",
                e.device, e.hub, e.raw, now,
            )  # fmt: skip
        elif isinstance(step, trust.Admit):
            e = step.endorsement
            r = await con.fetchrow(
                "INSERT INTO devices(public, node_id, name, role, state, first_seen,"
                " last_seen, approved_at) VALUES ($1, $2, $3, $4, $5, $6, $6, $7)"
                f" ON CONFLICT (public) DO NOTHING RETURNING {DEVICE_COLS}",
                e.device, identity.fingerprint(e.device), e.name, e.role, step.state, now,
                now if step.state == APPROVED else None,
            )  # fmt: skip
            if r is not None:
                devices[e.device] = device_row(r)
        else:
            d = devices[step.public]
            await set_approved(con, d, now, None)
            changed.add(d.id)
    return changed
