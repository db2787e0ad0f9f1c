"""The hub's ingest planner: accept, duplicate, fork, reject — decided from the bytes alone."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

import pytest

from hub.protocol import codec, entry, ingest, record
from hub.protocol.identity import Identity
from hub.protocol.ingest import (
    ACCEPT,
    APPROVED,
    DUPLICATE,
    FORK,
    PENDING,
    REJECT,
    REVOKED,
    Device,
    Head,
)
from hub.protocol.quota import QUOTA, Ledger, Quotas, Usage
from hub.shared import generator

AT = 1707890400
ALICE = Identity.from_seed(b"\x21" * 32)
BOB = Identity.from_seed(b"\x22" * 32)


def body(i: int, operator: str = "Siti") -> bytes:
    tps = f"31710110010{i % 100:02d}"
    f = generator.make_form(random.Random(i), tps, "PPWP", operator=operator)
    return entry.encode_body(entry.parse(f), AT + i)


def chain(
    ident: Identity, n: int, *, start: int = 1, prev: bytes = record.GENESIS
) -> list[record.Record]:
    out = []
    for seq in range(start, start + n):
        rec = record.make(ident, seq, prev, body(seq))
        out.append(rec)
        prev = rec.hash
    return out


def examine(raws: Sequence[bytes]) -> list[ingest.Examined]:
    return [ingest.examine(i, raw) for i, raw in enumerate(raws)]


def held(recs: Sequence[record.Record]) -> tuple[dict[bytes, Head], dict[tuple[bytes, int], bytes]]:
    """Heads and stored bytes of a hub that holds ``recs`` (each origin's log from seq 1)."""
    heads: dict[bytes, Head] = {}
    existing: dict[tuple[bytes, int], bytes] = {}
    for r in recs:
        existing[(r.origin, r.seq)] = r.raw
        if r.seq > heads.get(r.origin, Head()).seq:
            heads[r.origin] = Head(r.seq, r.hash)
    return heads, existing


def run(
    raws: Sequence[bytes],
    held_recs: Sequence[record.Record] = (),
    devices: dict[bytes, Device] | None = None,
) -> ingest.Plan:
    ex = examine(raws)
    heads, existing = held(held_recs)
    needed = ingest.needed_existing(ex, heads)
    return ingest.plan(ex, heads, {k: existing[k] for k in needed}, devices or {})


def decisions(p: ingest.Plan) -> list[tuple[str, str | None]]:
    return [(o.decision, o.code) for o in p.outcomes]


def test_accept_a_chain() -> None:
    recs = chain(ALICE, 3)
    p = run([r.raw for r in recs])
    assert decisions(p) == [(ACCEPT, None)] * 3
    assert [o.seq for o in p.outcomes] == [1, 2, 3]
    assert [ex.record.seq for ex in p.accepted if ex.record] == [1, 2, 3]
    assert p.heads == {ALICE.public: Head(3, recs[2].hash)}
    assert p.new_origins == [ALICE.public]
    assert p.counts() == {ACCEPT: 3, DUPLICATE: 0, FORK: 0, REJECT: 0}
    assert p.forks == []


def test_accept_continues_from_the_held_head() -> None:
    recs = chain(ALICE, 5)
    p = run([r.raw for r in recs[3:]], held_recs=recs[:3], devices={ALICE.public: Device(APPROVED)})
    assert decisions(p) == [(ACCEPT, None)] * 2
    assert p.heads == {ALICE.public: Head(5, recs[4].hash)}
    assert p.new_origins == []


def test_duplicate_replay_is_a_no_op() -> None:
    recs = chain(ALICE, 3)
    p = run([r.raw for r in recs], held_recs=recs, devices={ALICE.public: Device(APPROVED)})
    assert decisions(p) == [(DUPLICATE, None)] * 3
    assert p.accepted == []
    assert p.heads == {}
    assert p.forks == []


def test_duplicate_inside_one_batch() -> None:
    (rec,) = chain(ALICE, 1)
    p = run([rec.raw, rec.raw])
    assert decisions(p) == [(ACCEPT, None), (DUPLICATE, None)]


def test_replay_plus_new_records() -> None:
    recs = chain(ALICE, 4)
    p = run([r.raw for r in recs], held_recs=recs[:2], devices={ALICE.public: Device(APPROVED)})
    assert decisions(p) == [(DUPLICATE, None)] * 2 + [(ACCEPT, None)] * 2


def test_out_of_order_inside_one_batch_is_sorted_and_accepted() -> None:
    recs = chain(ALICE, 4)
    order = [3, 0, 2, 1]
    p = run([recs[i].raw for i in order])
    assert decisions(p) == [(ACCEPT, None)] * 4
    assert [o.index for o in p.outcomes] == [0, 1, 2, 3]  # reported in the sender's order
    assert [o.seq for o in p.outcomes] == [4, 1, 3, 2]
    assert [ex.record.seq for ex in p.accepted if ex.record] == [1, 2, 3, 4]  # stored in order
    assert p.heads[ALICE.public] == Head(4, recs[3].hash)


def test_two_origins_interleaved() -> None:
    a, b = chain(ALICE, 2), chain(BOB, 2)
    p = run([b[1].raw, a[0].raw, b[0].raw, a[1].raw])
    assert decisions(p) == [(ACCEPT, None)] * 4
    assert p.heads == {ALICE.public: Head(2, a[1].hash), BOB.public: Head(2, b[1].hash)}
    assert sorted(p.new_origins) == sorted([ALICE.public, BOB.public])


def test_gap_is_rejected_out_of_order() -> None:
    recs = chain(ALICE, 4)
    p = run([recs[0].raw, recs[2].raw, recs[3].raw])
    assert decisions(p) == [(ACCEPT, None), (REJECT, "out_of_order"), (REJECT, "out_of_order")]
    assert "send seq 2 first" in (p.outcomes[1].reason or "")
    assert p.heads == {ALICE.public: Head(1, recs[0].hash)}


def test_gap_after_held_head() -> None:
    recs = chain(ALICE, 5)
    p = run([recs[4].raw], held_recs=recs[:2])
    assert decisions(p) == [(REJECT, "out_of_order")]
    assert "holds up to seq 2" in (p.outcomes[0].reason or "")
    assert "send seq 3 first" in (p.outcomes[0].reason or "")


def test_bad_signature() -> None:
    recs = chain(ALICE, 2)
    forged = codec.pack([1, ALICE.public, 2, recs[0].hash, body(99), recs[1].sig])
    p = run([recs[0].raw, forged])
    assert decisions(p) == [(ACCEPT, None), (REJECT, "bad_signature")]
    assert p.outcomes[1].reason == "signature does not verify"
    assert p.forks == []


def test_body_that_breaks_the_schema_is_rejected() -> None:
    bad = codec.pack({"form": "PPWP"})
    rec = record.make(ALICE, 1, record.GENESIS, bad)
    p = run([rec.raw])
    assert decisions(p) == [(REJECT, "bad_entry")]


def test_garbage_bytes() -> None:
    (rec,) = chain(ALICE, 1)
    p = run([b"\x00\x01garbage", rec.raw, b""])
    assert decisions(p) == [(REJECT, "bad_encoding"), (ACCEPT, None), (REJECT, "bad_encoding")]
    assert p.outcomes[0].to_dict()["code"] == "bad_encoding"
    assert p.outcomes[0].reason


def test_tampered_prev_with_valid_signature_is_a_fork() -> None:
    recs = chain(ALICE, 2)
    # ALICE's own key signs seq 3 on top of something other than the held seq 2.
    other = record.make(ALICE, 3, hashlib.sha256(b"another seq 2").digest(), body(3))
    p = run([other.raw], held_recs=recs, devices={ALICE.public: Device(APPROVED)})
    assert decisions(p) == [(FORK, "fork")]
    assert len(p.forks) == 1
    ex, held_raw = p.forks[0]
    assert ex.record == record.decode(other.raw)
    assert held_raw is None
    assert p.heads == {}


def test_same_seq_different_bytes_is_a_fork_and_stops_the_origin() -> None:
    recs = chain(ALICE, 2)
    twin = record.make(ALICE, 2, recs[0].hash, body(2, operator="Salinan"))
    after = record.make(ALICE, 3, twin.hash, body(3))
    bob = chain(BOB, 1)[0]
    p = run([twin.raw, after.raw, bob.raw], held_recs=recs)
    assert decisions(p) == [(FORK, "fork"), (REJECT, "origin_forked"), (ACCEPT, None)]
    ((ex, held_raw),) = p.forks
    assert ex.index == 0
    assert held_raw == recs[1].raw  # the bytes already held are kept as evidence too
    assert "copied to another laptop" in (p.outcomes[0].reason or "")
    assert p.heads == {BOB.public: Head(1, bob.hash)}


def test_two_versions_of_one_seq_in_one_batch() -> None:
    r1 = record.make(ALICE, 1, record.GENESIS, body(1))
    r1b = record.make(ALICE, 1, record.GENESIS, body(1, operator="Salinan"))
    r2 = record.make(ALICE, 2, r1.hash, body(2))
    p = run([r1.raw, r1b.raw, r2.raw])
    assert decisions(p) == [(ACCEPT, None), (FORK, "fork"), (REJECT, "origin_forked")]
    assert p.forks[0][1] == r1.raw


def test_forked_device_is_refused_even_for_duplicates() -> None:
    recs = chain(ALICE, 2)
    devs = {ALICE.public: Device(APPROVED, forked=True)}
    p = run([recs[1].raw], held_recs=recs[:1], devices=devs)
    assert decisions(p) == [(REJECT, "origin_forked")]
    p = run([recs[0].raw], held_recs=recs[:1], devices=devs)
    assert decisions(p) == [(REJECT, "origin_forked")]


def test_revoked_device() -> None:
    recs = chain(ALICE, 4)
    devs = {ALICE.public: Device(REVOKED, revoked_after_seq=2)}
    p = run([r.raw for r in recs], devices=devs)
    assert decisions(p) == [(ACCEPT, None)] * 2 + [(REJECT, "device_revoked")] * 2
    assert "revoked after seq 2" in (p.outcomes[2].reason or "")
    assert p.heads == {ALICE.public: Head(2, recs[1].hash)}
    assert p.new_origins == []  # a known device, even if revoked


def test_pending_and_unknown_devices_are_accepted() -> None:
    a, b = chain(ALICE, 1), chain(BOB, 1)
    p = run([a[0].raw, b[0].raw], devices={ALICE.public: Device(PENDING)})
    assert decisions(p) == [(ACCEPT, None)] * 2
    assert p.new_origins == [BOB.public]


def test_missing_held_bytes_is_a_caller_error() -> None:
    recs = chain(ALICE, 2)
    ex = examine([recs[0].raw])
    heads, _existing = held(recs)
    with pytest.raises(ValueError, match="did not supply held bytes"):
        ingest.plan(ex, heads, {}, {})


def test_needed_existing_is_exactly_the_pairs_at_or_below_heads() -> None:
    a, b = chain(ALICE, 4), chain(BOB, 2)
    heads, _ = held(a[:2] + b[:2])
    raws = [
        a[3].raw,
        a[0].raw,
        b[1].raw,
        a[1].raw,
        a[2].raw,
        b"junk",
        chain(Identity.from_seed(b"\x23" * 32), 1)[0].raw,
    ]
    got = ingest.needed_existing(examine(raws), heads)
    assert got == [(ALICE.public, 1), (BOB.public, 2), (ALICE.public, 2)]
    assert ingest.needed_existing(examine(raws), {}) == []


def test_plan_is_a_pure_function() -> None:
    recs = chain(ALICE, 3)
    ex = examine([recs[2].raw, recs[0].raw, recs[1].raw])
    p1 = ingest.plan(ex, {}, {}, {})
    p2 = ingest.plan(ex, {}, {}, {})
    assert [o.to_dict() for o in p1.outcomes] == [o.to_dict() for o in p2.outcomes]
    assert p1.heads == p2.heads


def test_outcome_to_dict() -> None:
    recs = chain(ALICE, 3)
    p = run([recs[0].raw, recs[2].raw])
    assert p.outcomes[0].to_dict() == {
        "index": 0,
        "decision": ACCEPT,
        "origin": ALICE.node_id,
        "seq": 1,
    }
    d = p.outcomes[1].to_dict()
    assert d["code"] == "out_of_order"
    assert d["origin"] == ALICE.node_id
    assert d["seq"] == 3
    assert "send seq 2 first" in d["reason"]


def test_rejected_well_formed_record_names_its_origin_and_seq() -> None:
    recs = chain(ALICE, 2)
    forged = codec.pack([1, ALICE.public, 2, recs[0].hash, body(99), recs[1].sig])
    p = run([forged])
    (out,) = p.outcomes
    assert (out.decision, out.code, out.origin, out.seq) == (
        REJECT,
        "bad_signature",
        ALICE.public,
        2,
    )
    assert out.to_dict()["origin"] == ALICE.node_id


def test_needed_existing_skips_records_that_failed_examination() -> None:
    recs = chain(ALICE, 2)
    forged = codec.pack([1, ALICE.public, 1, record.GENESIS, body(99), recs[1].sig])
    heads, _ = held(recs)
    ex = examine([forged, recs[1].raw])
    assert ex[0].record is not None and ex[0].error is not None
    assert ingest.needed_existing(ex, heads) == [(ALICE.public, 2)]


def test_refuse_unknown_origins_at_the_root() -> None:
    a, b = chain(ALICE, 2), chain(BOB, 1)
    ex = examine([a[0].raw, a[1].raw, b[0].raw])
    devs = {ALICE.public: Device(APPROVED)}
    p = ingest.plan(ex, {}, {}, devs, refuse_unknown=True)
    assert decisions(p) == [(ACCEPT, None), (ACCEPT, None), (REJECT, "not_endorsed")]
    assert BOB.node_id in (p.outcomes[2].reason or "")
    assert p.new_origins == []
    assert BOB.public not in p.heads
    p = ingest.plan(ex, {}, {}, devs)  # a room hub takes the unknown laptop in (held)
    assert decisions(p) == [(ACCEPT, None)] * 3
    assert p.new_origins == [BOB.public]


# -- quotas on what devices nobody approved make the hub keep (hub.protocol.quota) ------------


def planned(
    raws: Sequence[bytes],
    ledger: Ledger,
    held_recs: Sequence[record.Record] = (),
    devices: dict[bytes, Device] | None = None,
) -> ingest.Plan:
    ex = examine(raws)
    heads, existing = held(held_recs)
    needed = {k: existing[k] for k in ingest.needed_existing(ex, heads)}
    return ingest.plan(ex, heads, needed, devices or {}, ledger=ledger)


def test_a_refused_unknown_key_leaves_no_device() -> None:
    recs = chain(ALICE, 3)
    p = run([recs[1].raw, recs[2].raw])  # seq 1 never sent: every record is refused
    assert decisions(p) == [(REJECT, "out_of_order")] * 2
    assert p.new_origins == []


def test_held_records_per_device_quota() -> None:
    recs = chain(ALICE, 5)
    ledger = Ledger(Quotas(held_records_per_device=3))
    p = planned([r.raw for r in recs], ledger)
    assert decisions(p) == [(ACCEPT, None)] * 3 + [(REJECT, QUOTA)] * 2
    assert "max_held_records_per_device" in (p.outcomes[3].reason or "")
    assert p.heads == {ALICE.public: Head(3, recs[2].hash)}
    assert ledger.usage(ALICE.public) == Usage(3, sum(len(r.raw) for r in recs[:3]))
    assert ledger.new_pending == 1 and p.new_origins == [ALICE.public]


def test_the_quota_counts_what_is_held_already() -> None:
    recs = chain(ALICE, 4)
    size = sum(len(r.raw) for r in recs[:2])
    ledger = Ledger(Quotas(held_records_per_device=3), {ALICE.public: Usage(2, size)},
                    Usage(2, size), pending=1)  # fmt: skip
    devs = {ALICE.public: Device(PENDING)}
    p = planned([r.raw for r in recs], ledger, held_recs=recs[:2], devices=devs)
    assert decisions(p) == [(DUPLICATE, None)] * 2 + [(ACCEPT, None), (REJECT, QUOTA)]
    assert ledger.new_pending == 0


def test_approved_and_revoked_devices_have_no_held_quota() -> None:
    a, b = chain(ALICE, 3), chain(BOB, 3)
    ledger = Ledger(Quotas(pending_devices=0, held_records_per_device=1, held_records=1))
    devs = {ALICE.public: Device(APPROVED), BOB.public: Device(REVOKED, revoked_after_seq=3)}
    p = planned([r.raw for r in a + b], ledger, devices=devs)
    assert decisions(p) == [(ACCEPT, None)] * 6
    assert ledger.added == {} and ledger.new_pending == 0


def test_held_bytes_quota_per_device() -> None:
    recs = chain(ALICE, 6)
    limit = sum(len(r.raw) for r in recs[:4])
    p = planned([r.raw for r in recs], Ledger(Quotas(held_bytes_per_device=limit)))
    assert decisions(p) == [(ACCEPT, None)] * 4 + [(REJECT, QUOTA)] * 2
    assert "max_held_bytes_per_device" in (p.outcomes[4].reason or "")


def test_total_held_quotas_span_devices() -> None:
    a, b = chain(ALICE, 3), chain(BOB, 3)
    ledger = Ledger(Quotas(held_records=4), {}, Usage(1, 100), pending=0)
    p = planned([r.raw for r in a + b], ledger)
    by_origin = {(o.origin, o.seq): (o.decision, o.code) for o in p.outcomes}
    first, second = sorted([ALICE.public, BOB.public])  # origins are taken in key order
    assert [by_origin[(first, s)] for s in (1, 2, 3)] == [(ACCEPT, None)] * 3
    assert [by_origin[(second, s)] for s in (1, 2, 3)] == [(REJECT, QUOTA)] * 3
    assert "max_held_records" in (p.outcomes[-1].reason or "")
    assert p.new_origins == [first]  # the refused key made no device
    limit = 100 + sum(len(r.raw) for r in a[:2])
    p = planned([r.raw for r in a], Ledger(Quotas(held_bytes=limit), {}, Usage(1, 100)))
    assert decisions(p) == [(ACCEPT, None)] * 2 + [(REJECT, QUOTA)]


def test_pending_quota_refuses_new_keys_and_makes_no_device() -> None:
    a, b = chain(ALICE, 2), chain(BOB, 2)
    ledger = Ledger(Quotas(pending_devices=2), pending=1)
    p = planned([r.raw for r in a + b], ledger)
    outcomes = {o.origin: (o.decision, o.code) for o in p.outcomes}
    assert sorted(outcomes.values()) == [(ACCEPT, None), (REJECT, QUOTA)]
    (made,) = p.new_origins
    assert outcomes[made] == (ACCEPT, None) and ledger.new_pending == 1
    refused = next(o for o in p.outcomes if o.code == QUOTA)
    assert "max_pending_devices" in (refused.reason or "")
    assert set(p.heads) == {made}
    # A known pending device is not new: the pending quota does not stop it.
    p = planned([r.raw for r in a], Ledger(Quotas(pending_devices=0)),
                devices={ALICE.public: Device(PENDING)})  # fmt: skip
    assert decisions(p) == [(ACCEPT, None)] * 2


def test_fork_evidence_of_a_new_key_needs_room_for_a_device() -> None:
    forged = record.make(ALICE, 1, b"\x07" * 32, body(1))  # seq 1 on top of nothing held
    p = planned([forged.raw], Ledger(Quotas(pending_devices=0)))
    assert decisions(p) == [(REJECT, QUOTA)] and p.forks == [] and p.new_origins == []
    ledger = Ledger(Quotas(pending_devices=1, held_records=0))
    p = planned([forged.raw], ledger)  # evidence is not a held record
    assert decisions(p) == [(FORK, "fork")] and p.new_origins == [ALICE.public]
    assert ledger.added == {} and ledger.new_pending == 1
