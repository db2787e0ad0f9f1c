"""Enrollment policy as plain functions (hub.protocol.trust): roles, forward limits, approval
and revocation cascades, endorsement acceptance and chains."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from hub.protocol import enroll, trust
from hub.protocol.errors import DeviceError, ProtocolError
from hub.protocol.identity import Identity
from hub.protocol.quota import Ledger, Quotas
from hub.protocol.trust import Admit, Approval, Keep, Revocation


@dataclass(frozen=True)
class Dev:
    public: bytes
    role: str = "laptop"
    state: str = "pending"
    forked: bool = False
    approved_at: int | None = None
    revoked_after_seq: int = 0
    endorsement: bytes | None = None
    name: str = ""

    @property
    def node_id(self) -> str:
        return self.public.hex()[:8]


def book(*devs: Dev) -> dict[bytes, trust.Member]:
    return {d.public: d for d in devs}


def key(n: int) -> bytes:
    return bytes([n]) * 32


A, B, C, D, E, H1, H2, H3 = (key(i) for i in range(1, 9))


# -- forward limit, approvable, enroll ---------------------------------------------------------


@pytest.mark.parametrize(
    ("dev", "limit"),
    [
        (Dev(A, state="approved"), 10),
        (Dev(A, state="pending"), 0),
        (Dev(A, state="revoked", revoked_after_seq=4), 4),
        (Dev(A, state="revoked", revoked_after_seq=40), 10),
        (Dev(A, state="approved", forked=True), 0),
    ],
)
def test_forward_limit(dev: Dev, limit: int) -> None:
    assert trust.forward_limit(dev, 10) == limit


def test_a_forked_device_cannot_be_approved() -> None:
    trust.check_approvable(Dev(A))
    with pytest.raises(DeviceError, match="has a fork"):
        trust.check_approvable(Dev(A, forked=True))


def test_a_role_is_fixed_at_first_enrollment() -> None:
    assert trust.enroll(Dev(A), "Meja 1", "laptop") == trust.Enrollment(name="Meja 1")
    assert trust.enroll(Dev(A, name="Meja 1"), "Meja 2", "laptop") == trust.Enrollment()
    for d in (
        Dev(A),
        Dev(A, state="approved", approved_at=1),
        Dev(A, state="revoked", approved_at=1),
        Dev(A, state="revoked"),
        Dev(A, state="pending", approved_at=1),
    ):
        with pytest.raises(ProtocolError) as e:
            trust.enroll(d, "x", "hub")
        assert e.value.code == "role_change"


def test_a_hub_is_approved_only_with_its_role_named() -> None:
    hub = Dev(A, role="hub")
    trust.check_approvable(hub, "hub")
    trust.check_approvable(Dev(A), None)
    trust.check_approvable(Dev(A), "laptop")
    for d, role in ((hub, None), (hub, "laptop"), (Dev(A), "hub")):
        with pytest.raises(ProtocolError) as e:
            trust.check_approvable(d, role)
        assert e.value.code == "role_not_confirmed"


# -- approval ---------------------------------------------------------------------------------


def test_approving_a_hub_approves_what_it_vouches_for_transitively() -> None:
    devs = book(
        Dev(H1, role="hub"),
        Dev(H2, role="hub"),
        Dev(A),
        Dev(B, state="revoked"),
        Dev(C, state="approved"),
        Dev(D),
    )
    ends = {H2: {H1: b"h1>h2"}, A: {H2: b"h2>a"}, B: {H1: b"h1>b"}, C: {H1: b"h1>c"}}
    assert trust.approve(H1, devs, ends) == [
        Approval(H1),
        Approval(H2, via=H1),
        Approval(A, via=H2),
    ]
    # A laptop's approval cascades nothing, even if someone endorsed "through" it.
    assert trust.approve(D, devs, {A: {D: b"d>a"}}) == [Approval(D)]
    assert devs[A].state == "pending"  # the caller's values are not changed


def test_a_diamond_is_approved_once() -> None:
    devs = book(Dev(H1, role="hub"), Dev(H2, role="hub"), Dev(H3, role="hub"), Dev(A))
    ends = {H2: {H1: b"1"}, H3: {H1: b"2"}, A: {H2: b"3", H3: b"4"}}
    assert trust.approve(H1, devs, ends) == [
        Approval(H1),
        Approval(H2, via=H1),
        Approval(A, via=H2),
        Approval(H3, via=H1),
    ]


# -- revocation -------------------------------------------------------------------------------


def test_revoking_a_hub_revokes_what_only_it_vouched_for() -> None:
    devs = book(
        Dev(H1, role="hub", state="approved"),
        Dev(H2, role="hub", state="approved"),
        Dev(H3, role="hub", state="approved"),
        Dev(A, state="approved"),  # only H1
        Dev(B, state="approved"),  # H1 and H2
        Dev(C, state="approved", endorsement=b"own"),  # H1, and approved here directly
        Dev(D, state="pending"),  # H1, never approved
        Dev(E, state="approved"),  # only H3, which only H1 vouched for
    )
    ends = {
        A: {H1: b""},
        B: {H1: b"", H2: b""},
        C: {H1: b""},
        D: {H1: b""},
        H3: {H1: b""},
        E: {H3: b""},
    }
    heads = {H1: 7, A: 5, E: 3}
    assert trust.revoke(H1, devs, ends, heads) == [
        Revocation(H1, 7),
        Revocation(A, 5, via=H1),
        Revocation(H3, 0, via=H1),
        Revocation(E, 3, via=H3),
    ]


def test_revoking_what_is_not_approved_cuts_at_zero() -> None:
    assert trust.revoke(A, book(Dev(A)), {}, {A: 9}) == [Revocation(A, 0)]
    assert trust.revoke(A, book(Dev(A, state="approved")), {}, {A: 9}) == [Revocation(A, 9)]


def test_revoking_again_keeps_the_cut() -> None:
    """What a device sent before its revocation stays counted, however often it is revoked."""
    again = book(Dev(A, state="revoked", revoked_after_seq=5))
    assert trust.revoke(A, again, {}, {A: 9}) == [Revocation(A, 5)]


# -- endorsements -----------------------------------------------------------------------------


def _e(hub: Identity, device: bytes, role: str = "laptop", at: int = 1) -> enroll.Endorsement:
    return enroll.open_endorsement(enroll.endorse(hub, device, "n", role, at))


def test_endorsements_chain_in_any_order() -> None:
    prov, room = Identity.generate(), Identity.generate()
    devs = book(Dev(prov.public, role="hub", state="approved"))
    lap = _e(room, A)
    up = _e(prov, room.public, "hub")
    steps = trust.accept_endorsements([lap, up], devs, {})
    assert steps == [Keep(up), Admit(up, "approved"), Keep(lap), Admit(lap, "approved")]
    # Through a pending hub, they are admitted as pending.
    devs = book(Dev(prov.public, role="hub", state="pending"))
    steps = trust.accept_endorsements([lap, up], devs, {})
    assert steps == [Keep(up), Admit(up, "pending"), Keep(lap), Admit(lap, "pending")]


def test_an_approved_hubs_word_approves_a_pending_device_and_cascades() -> None:
    hub, sub = Identity.generate(), Identity.generate()
    devs = book(
        Dev(hub.public, role="hub", state="approved"),
        Dev(sub.public, role="hub", state="pending"),
        Dev(A, state="pending"),
        Dev(B, state="revoked"),
    )
    held = {A: {sub.public: b"sub>a"}}
    e_sub, e_b = _e(hub, sub.public, "hub"), _e(hub, B)
    steps = trust.accept_endorsements([e_sub, e_b], devs, held)
    assert steps == [
        Keep(e_sub),
        Approval(sub.public, via=hub.public),
        Approval(A, via=sub.public),
        Keep(e_b),  # kept, but a revoked device stays revoked
    ]


def test_endorsements_that_chain_to_no_hub_here_are_left_out() -> None:
    hub, laptop_key, forked, stranger = (Identity.generate() for _ in range(4))
    devs = book(
        Dev(hub.public, role="hub", state="approved"),
        Dev(laptop_key.public, role="laptop", state="approved"),
        Dev(forked.public, role="hub", state="approved", forked=True),
    )
    mine = _e(hub, A)
    incoming = [_e(laptop_key, B), _e(forked, C), _e(stranger, D), mine]
    assert trust.accept_endorsements(incoming, devs, {}) == [Keep(mine), Admit(mine, "approved")]
    # Already held byte for byte: nothing to do.
    assert trust.accept_endorsements([mine], devs, {A: {hub.public: mine.raw}}) == []
    # A newer endorsement from the same hub replaces the old one.
    newer = _e(hub, A, at=2)
    devs[A] = Dev(A, state="approved")
    assert trust.accept_endorsements([newer], devs, {A: {hub.public: mine.raw}}) == [Keep(newer)]


def test_a_pending_hub_admits_devices_only_within_the_pending_quota() -> None:
    pending_hub, approved_hub = Identity.generate(), Identity.generate()
    devs = book(Dev(pending_hub.public, role="hub", state="pending"),
                Dev(approved_hub.public, role="hub", state="approved"))  # fmt: skip
    word = [_e(pending_hub, d) for d in (A, B, C)]
    ledger = Ledger(Quotas(pending_devices=3), pending=1)
    steps = trust.accept_endorsements(word, devs, {}, ledger)
    assert steps == [Keep(word[0]), Admit(word[0], "pending"),
                     Keep(word[1]), Admit(word[1], "pending")]  # fmt: skip
    assert ledger.new_pending == 2
    # An approved hub's word admits approved devices: the pending quota does not stop it.
    full = Ledger(Quotas(pending_devices=0))
    mine = _e(approved_hub, D)
    assert trust.accept_endorsements([mine], devs, {}, full) == [
        Keep(mine),
        Admit(mine, "approved"),
    ]
    # Nor does it stop a pending hub's word about a device known here already.
    devs[E] = Dev(E)
    known = _e(pending_hub, E)
    assert trust.accept_endorsements([known], devs, {}, full) == [Keep(known)]


# -- chains and backlog -----------------------------------------------------------------------


def test_chain_for_walks_up_through_approved_hubs() -> None:
    devs = book(
        Dev(H1, role="hub", state="approved", endorsement=b"E(H1)"),
        Dev(H2, role="hub", state="approved"),
        Dev(H3, role="hub", state="revoked"),
        Dev(A, state="approved"),
        Dev(B, state="approved", endorsement=b"E(B)"),
    )
    ends = {A: {H2: b"H2>A", H3: b"H3>A"}, H2: {H1: b"H1>H2"}}
    assert trust.chain_for([A], devs, ends) == [b"H2>A", b"H1>H2", b"E(H1)"]
    assert trust.chain_for([B, A], devs, ends) == [b"H2>A", b"H1>H2", b"E(H1)", b"E(B)"]
    assert trust.chain_for([C], devs, ends) == []


def test_backlog_is_forward_limits_minus_confirmations() -> None:
    assert trust.backlog({1: 10, 2: 4, 3: 0}, {1: 3, 3: 5}) == 7 + 4
    assert trust.backlog({}, {1: 3}) == 0


def _passes(incoming: list[enroll.Endorsement], devs: dict[bytes, trust.Member]) -> list[bytes]:
    """The order of the earlier algorithm, pass after pass over what is left: the reference
    for the one that waits on each hub (for chains without approvals)."""
    known = {p for p, d in devs.items() if d.role == "hub" and not d.forked}
    order: list[bytes] = []
    todo, progress = list(incoming), True
    while todo and progress:
        progress, rest = False, []
        for e in todo:
            if e.hub not in known:
                rest.append(e)
                continue
            order.append(e.raw)
            if e.role == "hub":
                known.add(e.device)
            progress = True
        todo = rest
    return order


def test_a_long_chain_sent_backwards_is_taken_whole_in_the_order_of_passes() -> None:
    """A chain of hubs each vouching for the next, sent last link first, plus links that
    point nowhere: all of the chain is taken, in the order passes would take it (a pass per
    link; the earlier algorithm took n² steps for it, on the event loop)."""
    top = Identity.generate()
    keys = [Identity.generate() for _ in range(300)]
    links = [_e(top, keys[0].public, "hub")]
    links += [_e(a, b.public, "hub") for a, b in itertools.pairwise(keys)]
    links += [_e(keys[-1], A)]
    stray = [_e(Identity.generate(), B), _e(keys[5], C)]  # unknown hub; a hub in the chain
    incoming = [*reversed(links[::2]), stray[0], *links[1::2], stray[1]]
    devs = book(Dev(top.public, role="hub", state="pending"))
    steps = trust.accept_endorsements(incoming, devs, {})
    kept = [s.endorsement.raw for s in steps if isinstance(s, Keep)]
    assert kept == _passes(incoming, devs)
    assert set(kept) == {e.raw for e in links} | {stray[1].raw}
    admitted = [s for s in steps if isinstance(s, Admit)]
    assert len(admitted) == len(keys) + 2 and {s.state for s in admitted} == {"pending"}
