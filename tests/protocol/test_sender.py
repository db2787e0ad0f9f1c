"""The laptop sender's decisions as plain values (hub.protocol.sender): which hubs, what the
hub's head means, which receipts to keep, what a push reply means."""

from __future__ import annotations

import pytest

from hub.protocol import receipt, sender
from hub.protocol.errors import CodecError, SignatureError
from hub.protocol.identity import Identity

NOW = 1_707_900_000
H = [bytes([i]) * 32 for i in range(10)]  # stand-ins for record hashes at seq 0..9


@pytest.fixture(scope="module")
def keys() -> dict[str, Identity]:
    return {name: Identity.generate() for name in ("me", "hub", "other_hub", "up", "stranger")}


# -- which hubs --------------------------------------------------------------------------------


def test_first_hub_ever_is_pinned_and_no_other_is_asked() -> None:
    a, b = H[1], H[2]
    choice = sender.HubChoice([], add=False)
    assert not choice.done
    assert choice.offer(a) == sender.PIN
    assert choice.done  # first enrollment: one hub, the first that answers
    assert choice.chosen == [a]
    assert sender.pin_decision([], b, add=False) == sender.PIN


def test_pinned_hub_is_accepted_any_other_refused() -> None:
    a, b = H[1], H[2]
    choice = sender.HubChoice([a], add=False)
    assert choice.offer(b) == sender.REFUSE
    assert choice.offer(a) == sender.ACCEPT
    assert choice.offer(a) == sender.SEEN  # the same hub at another address
    assert not choice.done and choice.chosen == [a]


def test_add_hub_pins_a_second_hub_and_keeps_asking() -> None:
    a, b, c = H[1], H[2], H[3]
    choice = sender.HubChoice([a], add=True)
    assert [choice.offer(x) for x in (b, a, c)] == [sender.PIN, sender.ACCEPT, sender.PIN]
    assert not choice.done and choice.chosen == [b, a, c]
    fresh = sender.HubChoice([], add=True)
    assert [fresh.offer(x) for x in (a, b)] == [sender.PIN, sender.PIN] and not fresh.done
    assert sender.pin_decision([a], b, add=True) == sender.PIN
    assert sender.pin_decision([a, b], b, add=False) == sender.ACCEPT


# -- the head check ----------------------------------------------------------------------------


def test_head_in_step_is_ok() -> None:
    assert sender.assess_head(sender.HubHead(0, bytes(32)), 5, None).ok
    check = sender.assess_head(sender.HubHead(3, H[3]), 5, H[3])
    assert (check.verdict, check.hub_seq, check.evidence) == (sender.OK, 3, None)
    assert sender.assess_head(sender.HubHead(5, H[5]), 5, H[5]).ok
    assert sender.assess_head(sender.HubHead(0, bytes(32)), 0, None).ok


def test_forked_at_the_hub_comes_first() -> None:
    for head in (sender.HubHead(3, H[3], forked=True), sender.HubHead(9, H[9], forked=True)):
        check = sender.assess_head(head, 5, H[3])
        assert (check.verdict, check.evidence) == (sender.FORKED, None)


def test_hub_ahead_hands_over_the_newest_record() -> None:
    check = sender.assess_head(sender.HubHead(8, H[8]), 5, None)
    assert (check.verdict, check.hub_seq, check.evidence) == (sender.BEHIND, 8, 5)
    empty = sender.assess_head(sender.HubHead(8, H[8]), 0, None)
    assert (empty.verdict, empty.evidence) == (sender.BEHIND, None)  # nothing to hand over


def test_another_entry_under_the_hubs_seq_is_a_fork_with_evidence() -> None:
    check = sender.assess_head(sender.HubHead(4, H[4]), 6, H[7])
    assert (check.verdict, check.hub_seq, check.evidence) == (sender.DIVERGED, 4, 4)


def test_parse_head() -> None:
    raw = {"seq": 4, "hash": H[4], "state": "approved", "forked": 0, "confirmed": b"r"}
    assert sender.parse_head(raw) == sender.HubHead(4, H[4], False, b"r")
    assert sender.parse_head({"seq": 4, "hash": H[4], "forked": 1}).forked
    assert sender.parse_head({"seq": 0, "hash": bytes(32), "confirmed": "x"}).confirmed is None
    for bad in (None, [], {"seq": 4}, {"seq": "4", "hash": H[4]}, {"seq": -1, "hash": H[4]},
                {"seq": 4, "hash": b"short"}):  # fmt: skip
        with pytest.raises(CodecError):
            sender.parse_head(bad)


# -- receipts ----------------------------------------------------------------------------------


def judge(rc: receipt.Receipt, me: bytes, issuers: list[bytes] | None, held: bytes | None) -> str:
    return sender.judge_receipt(rc, origin=me, issuers=issuers, held_hash=held).verdict


def test_a_good_receipt_is_kept(keys: dict[str, Identity]) -> None:
    me, hub = keys["me"].public, keys["hub"]
    rc = receipt.issue(hub, me, 3, H[3], NOW)
    check = sender.judge_receipt(rc, origin=me, issuers=[hub.public], held_hash=H[3])
    assert check.ok and check.receipt == rc
    assert judge(rc, me, None, H[3]) == sender.KEEP  # no pin yet: any issuer


def test_receipts_that_must_not_be_kept(keys: dict[str, Identity]) -> None:
    me, hub, other = keys["me"].public, keys["hub"], keys["other_hub"]
    good = receipt.issue(hub, me, 3, H[3], NOW)
    forged = receipt.Receipt(
        hub.public, me, 3, H[3], NOW, good.raw[:-1] + bytes([good.raw[-1] ^ 1])
    )
    check = sender.judge_receipt(forged, origin=me, issuers=[hub.public], held_hash=H[3])
    assert check.verdict == sender.UNSIGNED and check.detail
    # The fields are read from the signed bytes, never from the object handed in.
    lying = receipt.Receipt(hub.public, me, 2, H[2], NOW, good.raw)
    assert sender.judge_receipt(lying, origin=me, issuers=None, held_hash=H[3]).receipt.seq == 3
    assert judge(receipt.issue(hub, keys["stranger"].public, 3, H[3], NOW), me, None, H[3]) == (
        sender.OTHER_ORIGIN
    )
    assert judge(receipt.issue(hub, me, 0, bytes(32), NOW), me, [hub.public], None) == sender.EMPTY
    assert judge(receipt.issue(other, me, 3, H[3], NOW), me, [hub.public], H[3]) == (
        sender.WRONG_ISSUER
    )
    assert judge(good, me, [hub.public], None) == sender.NOT_HELD
    assert judge(good, me, [hub.public], H[4]) == sender.MISMATCH


def test_receipt_checks_run_in_order(keys: dict[str, Identity]) -> None:
    """The signature first (a forged receipt names nothing), then whose log, then the issuer,
    then the held record."""
    me, hub, other = keys["me"].public, keys["hub"], keys["other_hub"]
    foreign = receipt.issue(other, keys["stranger"].public, 3, H[3], NOW)
    flipped = foreign.raw[:-1] + bytes([foreign.raw[-1] ^ 1])
    bad_sig = receipt.Receipt(other.public, me, 3, H[3], NOW, flipped)
    assert judge(bad_sig, me, [hub.public], None) == sender.UNSIGNED
    assert judge(foreign, me, [hub.public], None) == sender.OTHER_ORIGIN
    assert judge(receipt.issue(other, me, 3, H[3], NOW), me, [hub.public], None) == (
        sender.WRONG_ISSUER
    )


# -- the relayed upstream confirmation ---------------------------------------------------------


def test_upstream_confirmation_needs_the_hubs_word_and_upstreams_signature(
    keys: dict[str, Identity],
) -> None:
    me, hub, up, stranger = keys["me"].public, keys["hub"], keys["up"], keys["stranger"]
    sig = receipt.vouch_upstream(hub, up.public)
    rc = receipt.issue(up, me, 4, H[4], NOW)

    def relayed(
        upstream: bytes | None, upstream_sig: bytes | None, raw: bytes | None, last: int = 6
    ) -> receipt.Receipt | None:
        return sender.relayed_confirmation(
            hub.public, upstream, upstream_sig, raw, origin=me, last_seq=last
        )

    assert relayed(up.public, sig, rc.raw) == rc
    # Nothing relayed, no upstream named: nothing to take.
    assert relayed(up.public, sig, None) is None
    assert relayed(None, None, rc.raw) is None
    assert relayed(up.public, None, rc.raw) is None
    # Beyond this laptop's log, or another laptop's: not taken either.
    assert relayed(up.public, sig, rc.raw, last=3) is None
    assert relayed(up.public, sig, receipt.issue(up, stranger.public, 4, H[4], NOW).raw) is None
    # Anyone on the LAN naming their own key as upstream: the hub did not sign it.
    with pytest.raises(SignatureError):
        relayed(stranger.public, receipt.vouch_upstream(stranger, stranger.public),
                receipt.issue(stranger, me, 4, H[4], NOW).raw)  # fmt: skip
    # A receipt upstream did not sign.
    with pytest.raises(SignatureError):
        relayed(up.public, sig, receipt.issue(stranger, me, 4, H[4], NOW).raw)
    with pytest.raises(CodecError):
        relayed(up.public, sig, b"\x91\x01")


# -- a push round ------------------------------------------------------------------------------


def test_push_round_moves_forward_in_batches() -> None:
    p = sender.Pusher(after=3, last=10, batch=4)
    assert p.next() == (3, 4)
    step = p.replied([7], [])
    assert (step.after, step.to, step.stuck) == (3, 7, False)
    assert p.next() == (7, 4)
    assert p.replied([10, 9], []).to == 10
    assert p.next() is None
    assert sender.Pusher(after=5, last=5, batch=500).next() is None


def test_push_reply_that_moves_nothing_is_stuck_with_the_first_refusal() -> None:
    p = sender.Pusher(after=20, last=25, batch=500)
    refused = [
        {"index": 0, "decision": "reject", "seq": 21, "code": "device_revoked", "reason": "no"},
        {"index": 1, "decision": "reject", "seq": 22, "code": "device_revoked", "reason": "no"},
        {"index": 2, "decision": "fork", "seq": 23, "code": "fork", "reason": "two"},
    ]
    step = p.replied([20], refused)  # a receipt for what the hub already held
    assert step.stuck and (step.after, step.to) == (20, 20)
    assert (step.code, step.reason) == ("device_revoked", "#21: no (+2 more)")
    assert p.replied([], refused[2:]).reason == "#23: two"
    silent = p.replied([], [])
    assert silent.stuck and (silent.code, silent.reason) == (sender.NOT_TAKEN, "")
    assert p.next() == (20, 500)  # nothing moved


def test_too_big_halves_the_batch_down_to_one() -> None:
    p = sender.Pusher(after=0, last=100, batch=500)
    sizes = []
    while p.too_big():
        sizes.append(p.batch)
    assert sizes == [250, 125, 62, 31, 15, 7, 3, 1]
    assert p.next() == (0, 1)
    with pytest.raises(ValueError):
        sender.Pusher(after=0, last=1, batch=0)


def test_parse_push_reply() -> None:
    r1, r2 = {"seq": 1, "code": "x"}, {"seq": 2, "code": "fork"}
    reply = sender.parse_push_reply(
        {
            "accepted": 3,
            "duplicate": 1,
            "rejected": [r1],
            "forks": [r2],
            "receipts": [b"a"],
            "origins": [],
        }
    )
    assert reply == sender.PushReply(3, 1, [r1, r2], [b"a"])
    assert sender.parse_push_reply({}) == sender.PushReply()
    for bad in (None, {"accepted": "3"}, {"receipts": b"a"}, {"rejected": {}}):
        with pytest.raises(CodecError):
            sender.parse_push_reply(bad)
