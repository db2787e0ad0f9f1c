"""What the forwarder needs of a hub on PostgreSQL (``hub.upstream.UpstreamStore``), so that a
big provincial hub can keep its entries in PostgreSQL and still forward one stream upstream.

``PgUpstreamStore(store)`` keeps, between two ``refresh`` calls, one row per *device* (its
head, state, upstream's newest receipt and latest refusal) and the endorsements: what the
outbox decides on (``hub.protocol.outbox.Holdings``). Nothing per entry: record bytes, ages
and fork evidence are read from the database when a step needs them. The forwarder refreshes
before every step, so its view is at most one step old; a record committed meanwhile is
simply forwarded at the next step.

One forwarder per hub: when several receivers share the database, start only one of them with
``--upstream`` (docs/scaling.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from hub.memory import Confirmed, DeviceRow, Rejection
from hub.protocol import trust
from hub.protocol.ingest import Head

from .rows import DEVICE_COLS, device_row, head_of
from .store import PgStore


class PgUpstreamStore:
    """``hub.upstream.UpstreamStore`` over a ``PgStore`` (see the module docstring)."""

    def __init__(self, store: PgStore):
        self.store = store
        self.devices: dict[bytes, DeviceRow] = {}
        self.devices_by_id: dict[int, DeviceRow] = {}
        self.heads: dict[int, Head] = {}
        self.confirmed: dict[int, Confirmed] = {}
        self.rejections: dict[int, Rejection] = {}
        self.endorsements: dict[bytes, dict[bytes, bytes]] = {}
        self.fork_count = 0

    @property
    def changed(self) -> asyncio.Event:
        return self.store.changed

    async def refresh(self) -> None:
        """Read the per-device view again, in one snapshot."""
        async with self.store.db.read() as con, con.transaction(isolation="repeatable_read"):
            rows = await con.fetch(f"SELECT {DEVICE_COLS} FROM devices")
            ups = await con.fetch("SELECT dev, seq, hash, receipt, at FROM upstream")
            rej = await con.fetch(
                "SELECT DISTINCT ON (dev) dev, seq, code, reason, at FROM upstream_rejections"
                " ORDER BY dev, id DESC"
            )
            ends = await con.fetch("SELECT device, hub, raw FROM endorsements")
            forks = await con.fetchval("SELECT count(*) FROM forks")
        devices = [device_row(r) for r in rows]
        self.devices = {d.public: d for d in devices}
        self.devices_by_id = {d.id: d for d in devices}
        self.heads = {r["id"]: head_of(r) for r in rows if r["head_seq"]}
        self.confirmed = {r[0]: Confirmed(r[1], bytes(r[2]), bytes(r[3]), r[4]) for r in ups}
        self.rejections = {
            r[0]: Rejection(r[0], r[1], r[2], r[3], r[4])
            for r in rej
            if r[1] is None or r[0] not in self.confirmed or self.confirmed[r[0]].seq < r[1]
        }  # a refusal upstream has since receipted past is over (as hub.store forgets it)
        endorsements: dict[bytes, dict[bytes, bytes]] = {}
        for dev, hub, raw in ends:
            endorsements.setdefault(bytes(dev), {})[bytes(hub)] = bytes(raw)
        self.endorsements = endorsements
        self.fork_count = int(forks)

    def backlog(self) -> int:
        limits = {dev: d.forward_limit(self.heads[dev].seq if dev in self.heads else 0)
                  for dev, d in self.devices_by_id.items()}  # fmt: skip
        return trust.backlog(limits, {dev: c.seq for dev, c in self.confirmed.items()})

    def chain_for(self, publics: Iterable[bytes]) -> list[bytes]:
        return trust.chain_for(publics, self.devices, self.endorsements)

    async def get_meta(self, key: str) -> bytes | None:
        return await self.store.get_meta(key)

    async def set_meta(self, key: str, value: bytes) -> None:
        await self.store.set_meta(key, value)

    async def records_after(self, dev: int, after_seq: int, limit: int) -> list[bytes]:
        return await self.store.records_after(dev, after_seq, limit)

    async def record_raw(self, public: bytes, seq: int) -> bytes | None:
        return await self.store.record_raw(public, seq)

    async def received_at(self, dev: int, seq: int) -> int | None:
        at = await self.store.db.fetchval(
            "SELECT received_at FROM records WHERE dev = $1 AND seq = $2", dev, seq
        )
        return None if at is None else int(at)

    async def fork_evidence(self) -> list[tuple[int, int, bytes, bytes | None]]:
        return await self.store.fork_evidence()

    async def confirm(self, dev: int, seq: int, h: bytes, receipt: bytes, now: int) -> None:
        """Upstream's receipt for ``dev`` up to ``seq`` (only ever moves forward)."""
        await self.store.db.execute(
            "INSERT INTO upstream(dev, seq, hash, receipt, at) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (dev) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash,"
            " receipt = EXCLUDED.receipt, at = EXCLUDED.at WHERE EXCLUDED.seq > upstream.seq",
            dev, seq, h, receipt, now,
        )  # fmt: skip
        old = self.confirmed.get(dev)
        if old is None or old.seq < seq:
            self.confirmed[dev] = Confirmed(seq, h, receipt, now)
        r = self.rejections.get(dev)
        if r is not None and r.seq is not None and r.seq <= seq:
            del self.rejections[dev]

    async def unconfirm(self, dev: int, seq: int, h: bytes) -> None:
        """Upstream lost what it signed for: back to ``seq`` (its old receipt kept)."""
        await self.store.db.execute(
            "UPDATE upstream SET seq = $2, hash = $3 WHERE dev = $1 AND seq > $2", dev, seq, h
        )
        old = self.confirmed.get(dev)
        if old is not None and old.seq > seq:
            self.confirmed[dev] = Confirmed(seq, h, old.receipt, old.at)

    async def reject_upstream(self, r: Rejection) -> None:
        prev = self.rejections.get(r.dev)
        if prev is not None and (prev.seq, prev.code, prev.reason) == (r.seq, r.code, r.reason):
            return
        await self.store.db.execute(
            "INSERT INTO upstream_rejections(dev, seq, code, reason, at)"
            " VALUES ($1, $2, $3, $4, $5)",
            r.dev, r.seq, r.code, r.reason, r.at,
        )  # fmt: skip
        self.rejections[r.dev] = r
