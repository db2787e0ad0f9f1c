"""One write transaction of the hub's store: the SQL statements on the writer connection, and
the ``Draft`` of what they change in memory.

A write transaction never touches the committed ``Memory``: it records what it changes in a
``Draft`` (new and changed rows, heads, endorsements, facts, forks, what the quotas' ``Ledger``
counted, what to log) and reads through it, so later decisions in the same transaction see
earlier ones. The store applies the draft after the COMMIT succeeds; if the COMMIT fails the
draft is dropped, so no coroutine can ever act on something that was rolled back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import ChainMap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from hub.memory import DeviceRow, Facts, Memory
from hub.protocol import identity, trust
from hub.protocol.enroll import Endorsement
from hub.protocol.errors import ProtocolError
from hub.protocol.ingest import APPROVED, PENDING, REVOKED, Head
from hub.protocol.quota import Ledger, Quotas, Usage

log = logging.getLogger("hub.store")

ENDORSE_ON_LOOP = 64  # endorsements decided on the event loop; more go to a worker thread


def enroll_again(d: trust.Member, name: str, role: str) -> trust.Enrollment:
    """``trust.enroll`` for a known device; a refused role change is logged at WARNING (both
    hub stores use this)."""
    try:
        return trust.enroll(d, name, role)
    except ProtocolError:
        log.warning(
            "device %s (%s) enrolled as a %s asked to be a %s: refused (role_change)",
            d.node_id, d.name or "no name", d.role, role,
        )  # fmt: skip
        raise


class Draft:
    """The changes of one write transaction, over the committed ``Memory`` it started from."""

    def __init__(self, base: Memory, quotas: Quotas | None = None):
        self.base = base
        self.rows: dict[bytes, DeviceRow] = {}  # new and changed devices
        self.endorsed: dict[bytes, dict[bytes, bytes]] = {}  # whole maps of changed devices
        self.heads: dict[int, Head] = {}
        self.facts: list[Facts] = []
        self.forks: dict[int, int] = {}  # dev -> forks detected in this transaction
        # The quotas as this transaction sees them; what it holds more is applied with it.
        self.ledger = Ledger(quotas or Quotas(), base.held, base.held_total, base.pending)
        self.changed = False  # something status shows changed (records, states)
        self.logs: list[tuple[int, str, tuple[Any, ...]]] = []  # said after the COMMIT
        # Reading through the draft: its changes over the committed state.
        self.devices: ChainMap[bytes, DeviceRow] = ChainMap(self.rows, base.devices)
        self.endorsements = ChainMap(self.endorsed, base.endorsements)

    def device(self, public: bytes) -> DeviceRow | None:
        return self.devices.get(public)

    def head(self, dev: int) -> Head:
        return self.heads.get(dev) or self.base.heads.get(dev, Head())

    # -- changing it ---------------------------------------------------------------------------

    def put(self, d: DeviceRow) -> DeviceRow:
        self.rows[d.public] = d
        return d

    def update(self, d: DeviceRow, **changes: Any) -> DeviceRow:
        return self.put(dataclasses.replace(d, **changes))

    def endorse(self, device: bytes, hub: bytes, raw: bytes) -> None:
        self.endorsed[device] = {**self.endorsements.get(device, {}), hub: raw}

    def log(self, level: int, msg: str, *args: Any) -> None:
        self.logs.append((level, msg, args))

    def apply(self) -> None:
        """Make the draft's changes the committed state (call only after the COMMIT)."""
        m = self.base
        for d in self.rows.values():
            old = m.devices.get(d.public)
            m.pending += (d.state == PENDING) - (old is not None and old.state == PENDING)
            if d.approved_at is not None and d.public in m.held:  # approval lifts its quota
                m.held_total -= m.held.pop(d.public)
            m.put(d)
        for public, more in self.ledger.added.items():
            if m.devices[public].approved_at is None:
                m.held[public] = m.held.get(public, Usage()) + more
                m.held_total += more
        m.endorsements.update(self.endorsed)
        m.heads.update(self.heads)
        for f in self.facts:
            m.counts[f.dev] = m.counts.get(f.dev, 0) + 1
        m.facts.extend(self.facts)
        for dev, n in self.forks.items():
            m.forks[dev] = m.forks.get(dev, 0) + n
            m.fork_count += n


class Transaction:
    """One write transaction: the writer connection, and the draft its changes go to."""

    def __init__(self, conn: aiosqlite.Connection, draft: Draft, folder: Path):
        self.conn = conn
        self.draft = draft
        self.folder = folder

    async def insert_device(
        self, public: bytes, name: str, role: str, st: str, now: int, via: str | None = None
    ) -> DeviceRow:
        node_id = identity.fingerprint(public)
        approved_at = now if st == APPROVED else None
        cur = await self.conn.execute(
            "INSERT INTO devices(public, node_id, name, role, state, first_seen, last_seen,"
            " approved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (public, node_id, name, role, st, now, now, approved_at),
        )
        assert cur.lastrowid is not None
        d = self.draft.put(DeviceRow(cur.lastrowid, public, node_id, name, role, st, now, now,
                                     approved_at, None, 0, False, None))  # fmt: skip
        if st == PENDING and via is not None:
            self.draft.log(
                logging.INFO, "%s %s (%s) arrives through hub %s, which is pending here: "
                "approving that hub approves it too", role, node_id, name or "no name", via,
            )  # fmt: skip
        elif st == PENDING:
            self.draft.log(
                logging.WARNING, "new %s %s (%s) is pending: check its comparison code (c1hub "
                "devices --data %s), then run `c1hub approve --data %s %s`",
                role, node_id, name or "no name", self.folder, self.folder, node_id,
            )  # fmt: skip
        return d

    async def enroll(self, public: bytes, name: str, role: str, now: int) -> DeviceRow:
        """First contact: a pending device. Again: seen now, maybe named, maybe a new role
        (``trust.enroll``)."""
        d = self.draft.device(public)
        if d is None:
            self.draft.ledger.check_new_device()  # QuotaError (429) past max_pending_devices
            return await self.insert_device(public, name, role, PENDING, now)
        name = enroll_again(d, name, role).name or d.name
        await self.conn.execute(
            "UPDATE devices SET last_seen = ?, name = ? WHERE id = ?", (now, name, d.id)
        )
        return self.draft.update(d, last_seen=now, name=name)

    async def approve(self, step: trust.Approval, now: int, endorsement: bytes | None) -> None:
        d = self.draft.devices[step.public]
        await self.conn.execute(
            "UPDATE devices SET state = 'approved', approved_at = ?,"
            " endorsement = COALESCE(?, endorsement), revoked_at = NULL WHERE id = ?",
            (now, endorsement, d.id),
        )
        if endorsement is None:
            endorsement = d.endorsement
        self.draft.update(
            d, state=APPROVED, approved_at=now, revoked_at=None, endorsement=endorsement
        )

    async def revoke(self, step: trust.Revocation, now: int) -> None:
        d = self.draft.devices[step.public]
        await self.conn.execute(
            "UPDATE devices SET state = 'revoked', revoked_at = ?, revoked_after_seq = ?"
            " WHERE id = ?",
            (now, step.after_seq, d.id),
        )
        self.draft.update(d, state=REVOKED, revoked_at=now, revoked_after_seq=step.after_seq)
        if step.via is not None:
            self.draft.log(
                logging.WARNING, "revoking %s %s too: it was approved only through hub %s",
                d.role, d.node_id, self.draft.devices[step.via].node_id,
            )  # fmt: skip

    async def endorse(self, endorsements: Sequence[Endorsement], now: int) -> None:
        """Take the endorsements that chain to a hub known here (``trust.accept_endorsements``,
        decided on a worker thread when there are many: the store's lock keeps the devices and
        endorsements it reads from changing meanwhile)."""
        draft = self.draft
        args = (endorsements, draft.devices, draft.endorsements, draft.ledger)
        if len(endorsements) <= ENDORSE_ON_LOOP:
            steps = trust.accept_endorsements(*args)
        else:
            steps = await asyncio.to_thread(trust.accept_endorsements, *args)
        for step in steps:
            if isinstance(step, trust.Keep):
                e = step.endorsement
                await self.conn.execute(
                    "INSERT OR REPLACE INTO endorsements(device, hub, raw, received_at)"
                    " VALUES (?, ?, ?, ?)",
                    (e.device, e.hub, e.raw, now),
                )
                draft.endorse(e.device, e.hub, e.raw)
            elif isinstance(step, trust.Admit):
                e = step.endorsement
                via = draft.devices[e.hub].node_id
                await self.insert_device(e.device, e.name, e.role, step.state, now, via)
            else:
                await self.approve(step, now, None)
            draft.changed = True

    async def existing(self, pairs: list[tuple[bytes, int]]) -> dict[tuple[bytes, int], bytes]:
        """Raw bytes held for (origin, seq) pairs, read inside the transaction (a batch earlier
        in the group may have written them): one range query per origin, since replays are the
        normal recovery path and must not cost a query per record."""
        by_origin: dict[bytes, list[int]] = {}
        for origin, seq in pairs:
            by_origin.setdefault(origin, []).append(seq)
        out: dict[tuple[bytes, int], bytes] = {}
        for origin, seqs in by_origin.items():
            want = set(seqs)
            async with self.conn.execute(
                "SELECT seq, raw FROM records WHERE dev = ? AND seq BETWEEN ? AND ?",
                (self.draft.devices[origin].id, min(seqs), max(seqs)),
            ) as cur:
                async for seq, raw in cur:
                    if seq in want:
                        out[(origin, seq)] = bytes(raw)
        return out
