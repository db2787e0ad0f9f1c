"""What the hub's store keeps in memory (``Memory``), and the values it is made of.

``Memory`` holds, for every device, its row (a frozen ``DeviceRow``), its head, the
endorsements received for it, how many records it stored, how many forks it has, upstream's
newest receipt and latest refusal; and per stored record the compact ``Facts`` that status,
totals and the forwarder need (no record bytes: those are always read from SQLite, a page at a
time). For the quotas (``hub.protocol.quota``) it keeps the records and bytes held by each
device never approved, their sum, and the number of pending devices, so a push or an
enrollment is checked without a scan. ``load`` reads it from committed data only, in one
snapshot. It changes only when a write transaction's ``hub.transaction.Draft`` is applied
after its COMMIT.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from hub.protocol import state, trust
from hub.protocol.ingest import PENDING, Device, Head, Plan
from hub.protocol.quota import Usage
from hub.shared.db import Database


@dataclass(frozen=True, slots=True)
class DeviceRow:
    id: int
    public: bytes
    node_id: str
    name: str
    role: str
    state: str
    first_seen: int
    last_seen: int
    approved_at: int | None
    revoked_at: int | None
    revoked_after_seq: int
    forked: bool
    endorsement: bytes | None  # this node's own endorsement, when it approved the device

    def policy(self) -> Device:
        return Device(self.state, self.forked, self.revoked_after_seq)

    def forward_limit(self, head: int) -> int:
        """Highest seq of this device's log that may be counted and forwarded."""
        return trust.forward_limit(self, head)


@dataclass(frozen=True, slots=True)
class Facts:
    """Per stored record: what status, flags and totals need (no raw bytes)."""

    dev: int
    seq: int
    facts: state.EntryFacts
    flags: tuple[str, ...]
    votes: str  # "no:votes,..." per candidate (PPWP, DPD) or party total (DPR, DPRD)


@dataclass(frozen=True, slots=True)
class Confirmed:
    seq: int
    hash: bytes
    receipt: bytes
    at: int


@dataclass(frozen=True, slots=True)
class Rejection:
    dev: int
    seq: int | None
    code: str
    reason: str
    at: int


@dataclass(slots=True)
class PushResult:
    plan: Plan
    heads: dict[bytes, Head] = field(default_factory=dict)  # heads of every origin touched


@dataclass(slots=True)
class StoreView:
    """A consistent copy of what derived state reads, cheap to take on the event loop and
    safe to compute on in another thread while the store keeps changing."""

    devices: Mapping[bytes, DeviceRow]
    devices_by_id: Mapping[int, DeviceRow]
    heads: Mapping[int, Head]
    counts: Mapping[int, int]
    facts: list[Facts]
    endorsements: Mapping[bytes, Mapping[bytes, bytes]]
    fork_count: int
    forks: Mapping[int, int]  # dev -> forks detected

    def room_forks(self) -> tuple[int, int]:
        return room_forks(self.forks, self.devices_by_id)

    def is_accepted(self, f: Facts) -> bool:
        """Accepted = counted and forwardable; otherwise held (pending, forked, post-revoke)."""
        d = self.devices_by_id[f.dev]
        return f.seq <= d.forward_limit(f.seq)


@dataclass(slots=True)
class Memory:
    """The store's in-memory state (see the module docstring)."""

    devices: dict[bytes, DeviceRow] = field(default_factory=dict)
    devices_by_id: dict[int, DeviceRow] = field(default_factory=dict)
    heads: dict[int, Head] = field(default_factory=dict)
    endorsements: dict[bytes, dict[bytes, bytes]] = field(default_factory=dict)  # dev->hub->raw
    facts: list[Facts] = field(default_factory=list)
    counts: dict[int, int] = field(default_factory=dict)  # dev -> records stored
    confirmed: dict[int, Confirmed] = field(default_factory=dict)  # dev -> upstream's receipt
    rejections: dict[int, Rejection] = field(default_factory=dict)  # dev -> upstream's refusal
    fork_count: int = 0
    forks: dict[int, int] = field(default_factory=dict)  # dev -> forks detected
    held: dict[bytes, Usage] = field(default_factory=dict)  # never approved: what each holds
    held_total: Usage = field(default_factory=Usage)  # the sum of ``held``
    pending: int = 0  # devices pending

    def put(self, d: DeviceRow) -> None:
        self.devices[d.public] = d
        self.devices_by_id[d.id] = d

    def snapshot(self) -> StoreView:
        # Rows are frozen and endorsement maps are replaced, never changed in place: copying
        # the outer mappings is enough.
        return StoreView(
            devices=dict(self.devices),
            devices_by_id=dict(self.devices_by_id),
            heads=dict(self.heads),
            counts=dict(self.counts),
            facts=list(self.facts),
            endorsements=dict(self.endorsements),
            fork_count=self.fork_count,
            forks=dict(self.forks),
        )


async def load(db: Database) -> Memory:
    """The committed state, read in one snapshot (aside: nothing is replaced until done)."""
    m = Memory()
    async with db.reader() as conn:
        await conn.execute("BEGIN")

        async def rows(sql: str) -> AsyncIterator[Any]:
            async with conn.execute(sql) as cur:
                async for row in cur:
                    yield row

        async for r in rows(f"SELECT {_DEVICE_COLUMNS} FROM devices"):
            m.put(DeviceRow(*r[:11], bool(r[11]), r[12]))  # type: ignore[call-arg]
        async for dev, hub, raw in rows("SELECT device, hub, raw FROM endorsements"):
            m.endorsements.setdefault(dev, {})[hub] = raw
        async for dev, seq, h in rows(
            "SELECT r.dev, r.seq, r.hash FROM records r JOIN"
            " (SELECT dev, MAX(seq) AS m FROM records GROUP BY dev) h"
            " ON r.dev = h.dev AND r.seq = h.m"
        ):
            m.heads[dev] = Head(seq, h)
        async for dev, seq, h, el, fo, tps, flags, uj, nums, sup, scans, votes, size in rows(
            "SELECT dev, seq, hash, election, form, tps, flags, users_j, numbers, supersedes,"
            " scans, votes, length(raw) FROM records ORDER BY id"
        ):
            m.counts[dev] = m.counts.get(dev, 0) + 1
            d = m.devices_by_id[dev]
            origin = d.public
            if d.approved_at is None:
                m.held[origin] = m.held.get(origin, Usage()) + Usage(1, size)
            ef = state.EntryFacts(h, origin, (el, fo, tps), nums, sup, uj, split(scans))
            m.facts.append(Facts(dev, seq, ef, split(flags), votes))
        async for dev, seq, h, rc, at in rows("SELECT dev, seq, hash, receipt, at FROM upstream"):
            m.confirmed[dev] = Confirmed(seq, h, rc, at)
        async for dev, seq, code, reason, at in rows(
            "SELECT dev, seq, code, reason, at FROM upstream_rejections ORDER BY id"
        ):
            m.rejections[dev] = Rejection(dev, seq, code, reason, at)
        async for dev, n in rows("SELECT dev, COUNT(*) FROM forks GROUP BY dev"):
            m.forks[dev] = int(n)
        m.fork_count = sum(m.forks.values())
    m.held_total = sum(m.held.values(), Usage())
    m.pending = sum(1 for d in m.devices.values() if d.state == PENDING)
    return m


def room_forks(forks: Mapping[int, int], devices: Mapping[int, DeviceRow]) -> tuple[int, int]:
    """(forks of devices approved at some point — the room's alarm, forks of keys never
    approved — kept as evidence, reported apart) from the forks per device."""
    room = sum(n for dev, n in forks.items() if devices[dev].approved_at is not None)
    return room, sum(forks.values()) - room


def split(text: str) -> tuple[str, ...]:
    """The items of a comma-separated column (flags, scans)."""
    return tuple(x for x in text.split(",") if x)


_DEVICE_COLUMNS = (
    "id, public, node_id, name, role, state, first_seen, last_seen, approved_at, revoked_at,"
    " revoked_after_seq, forked, endorsement"
)
