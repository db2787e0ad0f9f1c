"""Deciding what to do with a pushed batch of records (sans-IO; DESIGN §2.4).

The I/O layer (``hub.store``) calls ``examine`` on each record — in worker threads, since
signature checks release the GIL — then fetches the current heads and, for records at or below
a head, the bytes already held, and calls ``plan``. ``plan`` is a pure function: same inputs,
same decisions. Per record:

- ``accept``    — next in its origin's log, signed by the origin, body well-formed: store it;
- ``duplicate`` — the very bytes already held: a no-op (replays land here);
- ``fork``      — the origin signed two different records for one seq (or a record whose
                  ``prev`` contradicts what is held): keep it as evidence, stop the origin;
- ``reject``    — with a stable code and a reason a person can act on.

Records are taken in (origin, seq) order whatever order they arrive in; a gap stops that origin
for the rest of the batch ("send seq N first").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import chain, entry, record
from .errors import ProtocolError
from .identity import fingerprint
from .quota import QUOTA, Ledger

ACCEPT = "accept"
DUPLICATE = "duplicate"
FORK = "fork"
REJECT = "reject"

PENDING = "pending"
APPROVED = "approved"
REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class Examined:
    """A record after the CPU-heavy checks: decode, signature, body schema."""

    index: int
    record: record.Record | None
    body: dict[str, Any] | None
    error: ProtocolError | None


def examine(index: int, raw: bytes) -> Examined:
    """Decode, check the signature, decode the body. On failure ``error`` is set, and
    ``record`` too when the bytes were at least a well-formed record (so a rejection can name
    its origin and seq)."""
    try:
        rec = record.decode(raw)
    except ProtocolError as exc:
        return Examined(index, None, None, exc)
    try:
        rec.verify()
        body = entry.decode_body(rec.body)
    except ProtocolError as exc:
        return Examined(index, rec, None, exc)
    return Examined(index, rec, body, None)


@dataclass(frozen=True, slots=True)
class Head:
    seq: int = 0
    hash: bytes = record.GENESIS


@dataclass(frozen=True, slots=True)
class Device:
    state: str  # pending | approved | revoked
    forked: bool = False
    revoked_after_seq: int = 0


@dataclass(slots=True)
class Outcome:
    index: int
    decision: str
    origin: bytes | None = None
    seq: int | None = None
    code: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"index": self.index, "decision": self.decision}
        if self.origin is not None:
            d["origin"] = fingerprint(self.origin)
        if self.seq is not None:
            d["seq"] = self.seq
        if self.code is not None:
            d["code"] = self.code
            d["reason"] = self.reason
        return d


@dataclass(slots=True)
class Plan:
    outcomes: list[Outcome] = field(default_factory=list)
    accepted: list[Examined] = field(default_factory=list)
    forks: list[tuple[Examined, bytes | None]] = field(default_factory=list)  # (new, held raw)
    heads: dict[bytes, Head] = field(default_factory=dict)  # new heads of touched origins
    new_origins: list[bytes] = field(default_factory=list)  # new devices: records kept

    def counts(self) -> dict[str, int]:
        c = {ACCEPT: 0, DUPLICATE: 0, FORK: 0, REJECT: 0}
        for o in self.outcomes:
            c[o.decision] += 1
        return c


def needed_existing(
    examined: Sequence[Examined], heads: Mapping[bytes, Head]
) -> list[tuple[bytes, int]]:
    """(origin, seq) pairs at or below a held head: the caller must fetch their raw bytes."""
    out = []
    for ex in examined:
        if ex.record is not None and ex.error is None:
            h = heads.get(ex.record.origin)
            if h is not None and ex.record.seq <= h.seq:
                out.append((ex.record.origin, ex.record.seq))
    return out


def plan(
    examined: Sequence[Examined],
    heads: Mapping[bytes, Head],
    existing: Mapping[tuple[bytes, int], bytes],
    devices: Mapping[bytes, Device],
    *,
    refuse_unknown: bool = False,
    ledger: Ledger | None = None,
) -> Plan:
    """Decide every record of a batch. See the module docstring.

    An origin not in ``devices`` is new: its records are accepted (and held until the device
    is approved), unless ``refuse_unknown`` — the root's policy, where every origin must come
    with an endorsement chain — in which case they are rejected with ``not_endorsed``. A new
    origin becomes a device (``new_origins``) only when one of its records is kept (accepted,
    or fork evidence); a key whose records are all refused leaves nothing behind.

    With a ``ledger`` (``hub.protocol.quota``), records of devices never approved (pending, or
    new) are held only within its quotas, and a new origin only while there is room for one
    more pending device: a record over a quota is rejected with ``quota``, and so are the
    origin's later records in the batch. The ledger counts what is kept.
    """
    p = Plan()
    local_heads: dict[bytes, Head] = {}
    local_raw: dict[tuple[bytes, int], bytes] = {}
    forked: set[bytes] = {o for o, d in devices.items() if d.forked}
    made: set[bytes] = set()  # new origins kept in this batch (they are devices now)
    over: dict[bytes, str] = {}  # origins over a quota -> why

    def over_quota(o: bytes, size: int | None) -> str | None:
        """Why a record of ``o`` (``size`` bytes; None: fork evidence) cannot be kept, if it
        cannot; otherwise count it in the ledger."""
        if ledger is None:
            return None
        new = o not in devices and o not in made
        why = ledger.room_for_device() if new else None
        held = devices.get(o, Device(PENDING)).state == PENDING
        if why is None and held and size is not None:
            why = ledger.room_for(o, size)
        if why is not None:
            over[o] = why
            return why
        if new:
            ledger.add_device()
        if held and size is not None:
            ledger.add(o, size)
        return None

    def keep(o: bytes) -> None:
        if o not in devices and o not in made:
            made.add(o)
            p.new_origins.append(o)

    def reject(ex: Examined, code: str, reason: str) -> None:
        r = ex.record
        p.outcomes.append(
            Outcome(ex.index, REJECT, r.origin if r else None, r.seq if r else None, code, reason)
        )

    ok = [ex for ex in examined if ex.error is None and ex.record is not None]
    for ex in examined:
        if ex.error is not None:
            reject(ex, ex.error.code, ex.error.message)
    ok.sort(key=lambda ex: (ex.record.origin, ex.record.seq) if ex.record else (b"", 0))

    for ex in ok:
        rec = ex.record
        assert rec is not None
        o = rec.origin
        if o not in local_heads:
            local_heads[o] = heads.get(o, Head())
        head = local_heads[o]
        if refuse_unknown and o not in devices:
            reject(
                ex,
                "not_endorsed",
                f"device {fingerprint(o)} is not enrolled here and no approved hub vouches "
                "for it (no endorsement came with the stream); its entries are refused",
            )
            continue
        dev = devices.get(o, Device(PENDING))
        if o in forked:
            reject(
                ex,
                "origin_forked",
                f"device {fingerprint(o)} has a fork (two different entries signed for one "
                "seq); the hub accepts nothing more from it. The coordinator enrolls that laptop "
                "again with a fresh data folder (c1client init) and its forms are re-entered",
            )
            continue
        if rec.seq <= head.seq:
            held = local_raw.get((o, rec.seq)) or existing.get((o, rec.seq))
            if held is None:
                raise ValueError(f"caller did not supply held bytes for seq {rec.seq}")
            if held == rec.raw:
                p.outcomes.append(Outcome(ex.index, DUPLICATE, o, rec.seq))
            else:
                keep(o)
                p.forks.append((ex, held))
                forked.add(o)
                p.outcomes.append(
                    Outcome(
                        ex.index,
                        FORK,
                        o,
                        rec.seq,
                        "fork",
                        f"device {fingerprint(o)} signed two different entries as seq {rec.seq}: "
                        "its data folder was probably copied to another laptop. Both are kept as "
                        "evidence; nothing more is accepted from this device.",
                    )
                )
            continue
        if dev.state == REVOKED and rec.seq > dev.revoked_after_seq:
            reject(
                ex,
                "device_revoked",
                f"device {fingerprint(o)} was revoked after seq {dev.revoked_after_seq}; "
                "entries made since are refused. Re-enter them on an approved laptop.",
            )
            continue
        if o in over:
            reject(ex, QUOTA, over[o])
            continue
        follows = chain.link(head.seq, head.hash, rec.seq, rec.prev)
        if follows == chain.GAP:
            reject(
                ex,
                "out_of_order",
                f"seq {rec.seq} is not next: the hub holds up to seq {head.seq} for this "
                f"device; send seq {head.seq + 1} first",
            )
            continue
        why = over_quota(o, None if follows == chain.CHAIN else len(rec.raw))
        if why is not None:
            reject(ex, QUOTA, why)
            continue
        keep(o)
        if follows == chain.CHAIN:
            p.forks.append((ex, None))
            forked.add(o)
            p.outcomes.append(
                Outcome(
                    ex.index,
                    FORK,
                    o,
                    rec.seq,
                    "fork",
                    f"device {fingerprint(o)} signed seq {rec.seq} on top of a different seq "
                    f"{head.seq} than the hub holds: its log has forked. Kept as evidence; nothing "
                    "more is accepted from this device.",
                )
            )
            continue
        local_heads[o] = Head(rec.seq, rec.hash)
        local_raw[(o, rec.seq)] = rec.raw
        p.accepted.append(ex)
        p.outcomes.append(Outcome(ex.index, ACCEPT, o, rec.seq))

    p.outcomes.sort(key=lambda out: out.index)
    p.heads = {o: h for o, h in local_heads.items() if h != heads.get(o, Head())}
    return p
