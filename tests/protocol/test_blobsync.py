"""The scan transfer decisions without I/O (hub/protocol/blobsync.py)."""

from __future__ import annotations

import random

import pytest

from hub.protocol import blobsync as bs
from hub.protocol import outbox as ob
from hub.protocol.errors import ProtocolError

A, B, C = "a" * 64, "b" * 64, "c" * 64


def sender(chunk: int = 100) -> bs.BlobSender:
    return bs.BlobSender(chunk=chunk, rng=random.Random(1))


def test_asks_first_then_sends_lacking_blobs_in_order_from_their_offsets() -> None:
    s = sender()
    s.offer([(A, 250), (B, 50), (C, 10)])
    assert s.next_step(0) == bs.Ask((A, B, C))
    assert s.next_step(0) == bs.Ask((A, B, C))  # the same until answered
    s.lacking_answered({"blobs": [[A, "lacking", 120], [B, "held", 0], [C, "unknown", 0]]}, 0)
    assert s.bytes_pending() == 130 + 10
    assert s.next_step(0) == bs.Send(A, 120, 100, 250)
    s.chunk_answered({"offset": 220, "stored": 0})
    assert s.next_step(0) == bs.Send(A, 220, 30, 250)
    s.chunk_answered({"offset": 250, "stored": 1})
    assert s.state[A] == bs.HELD and s.next_step(0) is None
    assert s.sent_bytes == 130 and s.resent_bytes == 0
    # an unknown blob (its entry not there yet) is asked about again later
    assert s.next_step(bs.RECHECK_S - 1) is None
    assert s.next_step(bs.RECHECK_S) == bs.Ask((C,))


def test_an_interrupted_chunk_is_resumed_from_the_receivers_offset() -> None:
    s = sender()
    s.offer([(A, 300)])
    s.next_step(0)
    s.lacking_answered({"blobs": [[A, "lacking", 0]]}, 0)
    s.next_step(0)
    s.chunk_answered({"offset": 100})
    assert s.next_step(0) == bs.Send(A, 100, 100, 300)
    s.failed("", "connection reset", 0)  # did it land? the receiver says
    assert s.next_step(0) is None  # backing off
    until = s.backoff.until
    assert s.next_step(until) == bs.Ask((A,))
    s.lacking_answered({"blobs": [[A, "lacking", 100]]}, until)  # it did not
    assert s.next_step(until) == bs.Send(A, 100, 100, 300)
    s.chunk_answered({"offset": 200})
    s.next_step(until)
    s.chunk_answered({"offset": 300, "stored": 1})
    # one chunk went twice: bytes sent = blob + one chunk
    assert s.sent_bytes == 300 + 100 and s.resent_bytes == 100


def test_offset_mismatch_asks_again_without_backoff_and_fatal_refusals_stop() -> None:
    s = sender()
    s.offer([(A, 300), (B, 100)])
    s.next_step(0)
    s.lacking_answered({"blobs": [[A, "lacking", 0], [B, "lacking", 0]]}, 0)
    assert s.next_step(0) == bs.Send(A, 0, 100, 300)
    s.failed("offset_mismatch", "send from byte 200", 0)
    assert s.next_step(0) == bs.Ask((A,))  # where is the receiver? asked before any send
    s.lacking_answered({"blobs": [[A, "lacking", 200]]}, 0)
    assert s.next_step(0) == bs.Send(B, 0, 100, 100)  # A went to the back of the line
    s.failed("hash_mismatch", "bytes hash to something else", 0)
    assert s.state[B] == bs.FAILED and "hash_mismatch" in s.errors[B]
    assert s.next_step(0) == bs.Send(A, 200, 100, 300)
    s.failed("not_named", "send its entry first", 5)
    assert s.state[A] == bs.UNKNOWN and s.next_step(5) is None
    assert s.next_step(5 + bs.RECHECK_S) == bs.Ask((A,))


def test_a_garbled_lacking_answer_counts_as_unknown() -> None:
    s = sender()
    s.offer([(A, 10), (B, 10)])
    s.next_step(0)
    s.lacking_answered({"blobs": [[A, "lacking", "x"], "junk", [B, "nonsense", 0]]}, 0)
    assert s.state == {A: bs.UNKNOWN, B: bs.UNKNOWN}


def test_asks_in_batches_of_max_ask() -> None:
    s = sender()
    hashes = [f"{i:064x}" for i in range(bs.MAX_ASK + 5)]
    s.offer((h, 1) for h in hashes)
    step = s.next_step(0)
    assert isinstance(step, bs.Ask) and len(step.hashes) == bs.MAX_ASK


def test_numbers_first_only_in_the_outboxs_idle_rest() -> None:
    assert bs.numbers_first(ob.Wait(5.0, on_change=True))
    assert not bs.numbers_first(ob.Wait(5.0))  # backoff or pacing under the cap
    assert not bs.numbers_first(ob.Push((b"r",), ()))
    assert not bs.numbers_first(ob.Hello())


def test_chunk_size_follows_the_cap() -> None:
    assert bs.chunk_size(0) == bs.CHUNK
    assert bs.chunk_size(256) == 128 * 1024  # 2 Mbit/s: half a second per chunk
    assert bs.chunk_size(1) == bs.MIN_CHUNK


def test_content_range() -> None:
    assert bs.content_range("bytes 0-9/100", 10) == (0, 100)
    assert bs.content_range("bytes 90-99/100", None) == (90, 100)
    for bad in (None, "", "bytes 0-9/5", "bytes 5-1/100", "bytes=0-9/100"):
        with pytest.raises(ProtocolError) as e:
            bs.content_range(bad, 10 if bad else None)
        assert e.value.code == "bad_range"
    with pytest.raises(ProtocolError):
        bs.content_range("bytes 0-9/100", 9)  # the body is shorter than it says


def test_byte_range() -> None:
    assert bs.byte_range(None, 100) is None
    assert bs.byte_range("bytes=0-9", 100) == (0, 9)
    assert bs.byte_range("bytes=90-", 100) == (90, 99)
    assert bs.byte_range("bytes=95-200", 100) == (95, 99)
    assert bs.byte_range("bytes=-10", 100) == (90, 99)
    assert bs.byte_range("bytes=-500", 100) == (0, 99)
    for bad in ("bytes=100-", "bytes=5-1", "bytes=-0", "bytes=-", "bytes=0-1,5-6", "lines=1-2"):
        with pytest.raises(ProtocolError) as e:
            bs.byte_range(bad, 100)
        assert e.value.code == "range_not_satisfiable"


def test_check_chunk() -> None:
    kw = {"named": True, "held": False, "offset": 100, "length": 50, "total": 150,
          "max_size": 1000}  # fmt: skip
    v = bs.check_chunk(start=100, **kw)  # type: ignore[arg-type]
    assert v.ok and v.offset == 150 and v.last
    assert bs.check_chunk(start=0, **kw).code == "offset_mismatch"  # type: ignore[arg-type]
    assert bs.check_chunk(start=0, **{**kw, "named": False}).code == "not_named"  # type: ignore[arg-type]
    assert bs.check_chunk(start=100, **{**kw, "total": 2000}).code == "blob_too_large"  # type: ignore[arg-type]
    held = bs.check_chunk(start=100, **{**kw, "held": True})  # type: ignore[arg-type]
    assert held.code == "offset_mismatch" and held.offset == 150


def test_scan_index_offers_each_scan_once_its_entry_is_upstream() -> None:
    ix = bs.ScanIndex()
    ix.add(1, 1, "3101010001001", (A,))
    ix.add(1, 2, "3101010001002", ())
    ix.add(1, 3, "3101010001003", (B, A))  # A again under another TPS
    ix.add(2, 1, "3101010001004", (C,))
    assert ix.seen == 4 and ix.is_named(B) and not ix.is_named("d" * 64)
    assert ix.named[A] == {"3101010001001", "3101010001003"}
    assert ix.newly_confirmed({1: 2}) == [A]
    assert ix.newly_confirmed({1: 2}) == []
    assert ix.newly_confirmed({1: 3, 2: 1}) == [B, A, C]


def test_scan_pending_lists_entries_whose_pages_are_not_all_here() -> None:
    k1, k2 = ("e", "PPWP", "1"), ("e", "DPR", "1")
    assert bs.scan_pending([(k1, (A, B)), (k2, (C,)), (k2, ())], {A: 1, C: 1}) == [(k1, [B])]


def test_scan_counts_and_eta() -> None:
    c = bs.scan_counts([A, B, C], {A: 10, B: 20}, {A})
    assert c.to_dict() == {"expected": 3, "held": 2, "missing": 1, "pending_upstream": 1,
                           "bytes_pending": 20}  # fmt: skip
    root = bs.scan_counts([A, B, C], {A: 10, B: 20}, None)
    assert root.pending_upstream == 0 and root.bytes_pending == 0
    assert bs.eta_s(0, 0) == 0.0 and bs.eta_s(100, 0) is None and bs.eta_s(100, 50) == 2.0


def test_parse_ask() -> None:
    assert bs.parse_ask({"hashes": [A, A, B]}) == [A, B]
    for bad in ({"hashes": [A.upper()]}, {"hashes": A}, {}, [A], {"hashes": [A] * 1001}):
        with pytest.raises(ProtocolError):
            bs.parse_ask(bad)
