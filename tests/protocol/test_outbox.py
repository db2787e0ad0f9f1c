"""The forwarder's decisions as plain functions (hub.protocol.outbox)."""

from __future__ import annotations

from hub.protocol import outbox


def test_candidates_are_devices_with_more_than_upstream_holds() -> None:
    limits = {1: 10, 2: 5, 3: 0, 4: 7}  # device 3 is held (pending/forked): limit 0
    confirmed = {1: 10, 2: 3}
    cursor = {2: 4, 4: 2}
    assert outbox.candidates(limits, confirmed, cursor, {}, now=0.0) == [2, 4]
    # A parked device waits until its time comes.
    assert outbox.candidates(limits, confirmed, cursor, {4: 50.0}, now=10.0) == [2]
    assert outbox.candidates(limits, confirmed, cursor, {4: 50.0}, now=50.0) == [2, 4]


def test_the_lowest_refused_seq_is_the_cause() -> None:
    ids = {"AAAA-AAAA-AAAA": 1, "BBBB-BBBB-BBBB": 2, "CCCC-CCCC-CCCC": 3}
    items = [
        {"origin": "AAAA-AAAA-AAAA", "seq": 7, "code": "out_of_order"},
        {"origin": "AAAA-AAAA-AAAA", "seq": 5, "code": "bad_signature"},
        {"origin": "BBBB-BBBB-BBBB", "seq": "5", "code": "x"},  # not a whole seq
        {"origin": "CCCC-CCCC-CCCC", "seq": 1, "code": "x"},  # not in this batch
        {"origin": "ZZZZ-ZZZZ-ZZZZ", "seq": 1, "code": "x"},  # unknown device
        "garbage",
    ]
    got = outbox.causes(items, {1: 9, 2: 9}, ids.get)
    assert list(got) == [1] and got[1]["seq"] == 5 and got[1]["code"] == "bad_signature"


def test_receipt_ahead_confirms_only_unrefused_sends() -> None:
    ahead = {1: 10, 2: 10, 3: 4}
    sent_to = {1: 5, 2: 5, 3: 6}
    # 1: nothing refused, upstream holds more -> confirmed up to what was sent;
    # 2: something refused -> no; 3: upstream's receipt is below what was sent -> no.
    assert outbox.confirmed_by_duplicates(ahead, sent_to, refused=[2]) == {1: 5}


def test_upstream_holding_less_than_it_signed_for_is_found() -> None:
    assert outbox.lost_upstream({1: 4, 2: 10, 3: 0}, {1: 10, 2: 10, 3: 2, 4: 5}) == {1: 4, 3: 0}
    assert outbox.lost_upstream({1: 12}, {1: 10}) == {}
