"""One chain checker (hub.protocol.chain): how records link, and walking a log record by record
with every problem reported."""

from __future__ import annotations

import pytest

from hub.protocol import chain, entry, record
from hub.protocol.identity import Identity
from tests.helpers import chain as signed_chain
from tests.helpers import forms


@pytest.fixture(scope="module")
def me() -> Identity:
    return Identity.generate()


@pytest.fixture(scope="module")
def log(me: Identity) -> list[record.Record]:
    return signed_chain(me, forms(6, seed=3))


def walk_all(w: chain.Walk, raws: list[bytes], at: list[int] | None = None) -> list[tuple]:
    out = []
    for i, raw in enumerate(raws):
        for f in w.check(raw, None if at is None else at[i]).findings:
            out.append((f.seq, f.code))
    return out


def test_link() -> None:
    h1, h2 = b"\1" * 32, b"\2" * 32
    assert chain.link(0, record.GENESIS, 1, record.GENESIS) is None
    assert chain.link(4, h1, 5, h1) is None
    assert chain.link(4, h1, 6, h1) == chain.GAP
    assert chain.link(4, h1, 4, h1) == chain.GAP  # not next either
    assert chain.link(4, h1, 5, h2) == chain.CHAIN


def test_a_good_log_has_no_findings(me: Identity, log: list[record.Record]) -> None:
    w = chain.Walk(me.public)
    checked = [w.check(r.raw, r.seq) for r in log]
    assert all(not c.findings for c in checked)
    assert [c.record.seq for c in checked if c.record] == [1, 2, 3, 4, 5, 6]
    assert checked[0].body == entry.decode_body(log[0].body)
    assert (w.seq, w.hash) == (6, log[-1].hash)
    # Without stored positions (a bundle), the records' own seqs are the positions.
    assert walk_all(chain.Walk(), [r.raw for r in log]) == []
    # Starting after a known record.
    assert walk_all(chain.Walk(me.public, after=3, after_hash=log[2].hash), [log[3].raw]) == []


def test_a_missing_record_is_one_gap_and_no_chain_problem(log: list[record.Record]) -> None:
    raws = [r.raw for r in log]
    w = chain.Walk()
    found = [w.check(raw, seq) for raw, seq in ((raws[0], 1), (raws[1], 2), (raws[4], 5))]
    (gap,) = found[2].findings
    assert (gap.code, gap.seq, gap.after, gap.missing) == (chain.GAP, 5, 2, (3, 4))
    # Next record chains on from the one after the gap.
    assert not w.check(raws[5], 6).findings


def test_swapped_records(me: Identity, log: list[record.Record]) -> None:
    raws = [r.raw for r in log]
    raws[1], raws[3] = raws[3], raws[1]
    found = walk_all(chain.Walk(me.public), raws, at=[1, 2, 3, 4, 5, 6])
    assert (2, chain.SEQ_MISMATCH) in found and (4, chain.SEQ_MISMATCH) in found
    assert {seq for seq, _ in found} <= {2, 3, 4, 5}
    assert all(code in (chain.SEQ_MISMATCH, chain.CHAIN) for _, code in found)


def test_a_flipped_byte(me: Identity, log: list[record.Record]) -> None:
    raws = [r.raw for r in log]
    for where in (0, 40, 150, -30, -1):
        bad = bytearray(raws[2])
        bad[where] ^= 0x01
        w = chain.Walk(me.public)
        found = walk_all(w, [*raws[:2], bytes(bad), *raws[3:]], at=[1, 2, 3, 4, 5, 6])
        assert found, where
        # The damaged record and the next one (its prev no longer matches) only.
        assert {seq for seq, _ in found} <= {3, 4}, (where, found)


def test_undecodable_bytes_keep_their_place(me: Identity, log: list[record.Record]) -> None:
    w = chain.Walk(me.public)
    assert not w.check(log[0].raw, 1).findings
    c = w.check(b"\x00", 2)
    assert c.record is None and [(f.code, f.seq) for f in c.findings] == [(chain.BAD_RECORD, 2)]
    assert c.findings[0].detail
    # The next record's prev names the real seq 2, not these bytes: a chain problem.
    assert [(f.code, f.seq, f.after) for f in w.check(log[2].raw, 3).findings] == [
        (chain.CHAIN, 3, 2)
    ]
    # Without positions, bytes that are not a record are skipped.
    w = chain.Walk()
    assert [f.seq for f in w.check(b"\x00").findings] == [None]
    assert w.seq == 0 and not w.check(log[0].raw).findings


def test_foreign_signature_and_bad_body(me: Identity, log: list[record.Record]) -> None:
    stranger = Identity.generate()
    body = log[2].body
    foreign = record.make(stranger, 3, log[1].hash, body)
    w = chain.Walk(me.public)
    walk_all(w, [log[0].raw, log[1].raw])
    (f,) = w.check(foreign.raw, 3).findings
    assert (f.code, f.origin) == (chain.WRONG_ORIGIN, stranger.public)
    unsigned = log[3].raw[:-64] + bytes(64)  # seq 4 with its signature zeroed
    assert [f.code for f in w.check(unsigned, 4).findings] == [chain.BAD_SIGNATURE, chain.CHAIN]
    not_entry = record.make(me, 5, record.decode(unsigned).hash, b"\x81\xa1a\x01")
    c = w.check(not_entry.raw, 5)
    assert [f.code for f in c.findings] == [chain.BAD_BODY] and c.body is None
    assert chain.Walk(bodies=False).check(not_entry.raw, 5).findings[0].code == chain.GAP


def test_many_origins_each_in_order(me: Identity, log: list[record.Record]) -> None:
    other = Identity.generate()
    theirs = signed_chain(other, forms(3, seed=4))
    logs = chain.Logs()
    mixed = [log[0], theirs[0], log[1], theirs[1], theirs[2], log[3]]
    found = [(c.record.seq if c.record else None, f.code, f.after)
             for c in map(logs.check, (r.raw for r in mixed)) for f in c.findings]  # fmt: skip
    assert found == [(4, chain.GAP, 2)]
    assert set(logs.walks) == {me.public, other.public}
    assert [f.code for f in logs.check(b"junk").findings] == [chain.BAD_RECORD]
