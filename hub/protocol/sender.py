"""The laptop sender's decisions, without I/O (DESIGN §2.1, §2.4, §2.6; STYLE 1).

``client/sync.py`` does the HTTP and SQLite around these; here are the rules, fed plain values:

- **which hubs** to sync with this round (``HubChoice``, ``pin_decision``): a pinned hub is
  synced; the first hub ever is pinned (trust on first use, confirmed by the comparison code);
  another hub is refused as an impostor or a second hub, unless the operator asked to add one;
- **the head check** (``assess_head``): what the hub's head for this laptop's log means against
  the local log: fine, the hub marked this laptop forked, the hub holds more than the laptop (a
  restored backup or a copied folder), or another entry under the hub's head seq (a fork), and
  which of the laptop's own records to hand over as evidence;
- **receipts** (``judge_receipt``): kept only when signed by the expected issuer, for this
  laptop's log, naming a seq held here with that very hash;
- **the relayed upstream confirmation** (``relayed_confirmation``): upstream's receipt counts
  only if the pinned hub signed upstream's key as its upstream and upstream signed the receipt;
- **a push round** (``Pusher``): what to send next, what a reply means (progress to seq N, or
  stuck with the first refusal's code and reason), and a batch halved when the hub finds it too
  big.

Every function is pure: same values in, same decision out; the verdicts are stable codes and
the caller words them for the operator.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import receipt as receipt_mod
from .errors import CodecError, ProtocolError

# -- which hubs --------------------------------------------------------------------------------

ACCEPT = "accept"  # a pinned hub: sync with it
PIN = "pin"  # not pinned yet, and allowed: pin it at enrollment, then sync
REFUSE = "refuse"  # another hub than the pinned one(s): an impostor or a second hub
SEEN = "seen"  # the same hub again (another address of it): already chosen


def pin_decision(pinned: Collection[bytes], public: bytes, *, add: bool) -> str:
    """ACCEPT a pinned key; PIN the first hub ever, or any hub with ``add`` (a room with two
    hubs, on the operator's word); REFUSE any other."""
    if public in pinned:
        return ACCEPT
    if pinned and not add:
        return REFUSE
    return PIN


class HubChoice:
    """The hubs to sync with this round, offered in the order they answered hello.

    With no pin and no ``add``, only the first hub that answers is taken (``done`` is then
    True: stop asking others), so a laptop pins exactly one hub at first enrollment.
    """

    def __init__(self, pinned: Collection[bytes], *, add: bool):
        self.pinned = frozenset(pinned)
        self.add = add
        self.chosen: list[bytes] = []

    def offer(self, public: bytes) -> str:
        if public in self.chosen:
            return SEEN
        verdict = pin_decision(self.pinned, public, add=self.add)
        if verdict != REFUSE:
            self.chosen.append(public)
        return verdict

    @property
    def done(self) -> bool:
        return bool(self.chosen) and not self.pinned and not self.add


# -- the head check ----------------------------------------------------------------------------

OK = "ok"
FORKED = "forked"  # the hub marked this laptop's log forked: it accepts nothing more
BEHIND = "behind_hub"  # the hub holds more of this log than the laptop: restored or copied
DIVERGED = "diverged"  # the hub holds another entry under its head seq: the log forked


@dataclass(frozen=True, slots=True)
class HubHead:
    """The hub's answer to ``GET /v1/heads/{origin}`` for this laptop's log."""

    seq: int
    hash: bytes
    forked: bool = False
    confirmed: bytes | None = None  # upstream's receipt, relayed by the hub


def parse_head(obj: Any) -> HubHead:
    """The heads reply as a ``HubHead`` (CodecError when it is not one)."""
    if not isinstance(obj, dict):
        raise CodecError("the hub's heads reply is not a map")
    seq, hash_ = obj.get("seq"), obj.get("hash")
    if type(seq) is not int or seq < 0 or type(hash_) is not bytes or len(hash_) != 32:
        raise CodecError("the hub's heads reply needs a whole seq and a 32-byte hash")
    confirmed = obj.get("confirmed")
    return HubHead(
        seq, hash_, bool(obj.get("forked")), confirmed if type(confirmed) is bytes else None
    )


@dataclass(frozen=True, slots=True)
class HeadCheck:
    verdict: str  # OK, FORKED, BEHIND or DIVERGED
    hub_seq: int
    evidence: int | None = None  # seq of the laptop's own record to hand the hub, if any

    @property
    def ok(self) -> bool:
        return self.verdict == OK


def assess_head(head: HubHead, last_seq: int, own_hash: bytes | None) -> HeadCheck:
    """What the hub's head means against the local log (``last_seq`` entries, ``own_hash`` the
    laptop's record hash at ``head.seq``, None when it holds no such entry).

    FORKED comes first: nothing else matters once the hub stopped the origin. BEHIND: the
    laptop hands over its newest record (the same bytes are a harmless duplicate at the hub,
    different ones let the hub record the fork). DIVERGED: it hands over its own record at the
    hub's head seq, the evidence of the fork. Then the laptop stops; only OK goes on to push.
    """
    if head.forked:
        return HeadCheck(FORKED, head.seq)
    if head.seq > last_seq:
        return HeadCheck(BEHIND, head.seq, last_seq if last_seq > 0 else None)
    if head.seq > 0 and own_hash != head.hash:
        return HeadCheck(DIVERGED, head.seq, head.seq)
    return HeadCheck(OK, head.seq)


# -- receipts ----------------------------------------------------------------------------------

KEEP = "keep"
EMPTY = "empty"  # a receipt for seq 0 covers nothing: not kept
UNSIGNED = "unsigned"  # the signature over the receipt does not verify (or it is malformed)
OTHER_ORIGIN = "other_origin"  # for another device's log
WRONG_ISSUER = "wrong_issuer"  # signed, but not by the hub (or upstream) expected
NOT_HELD = "not_held"  # names a seq this laptop does not hold
MISMATCH = "mismatch"  # names this seq with another hash: the log has forked


@dataclass(frozen=True, slots=True)
class ReceiptCheck:
    verdict: str
    receipt: receipt_mod.Receipt  # as decoded from its signed bytes
    detail: str = ""  # for UNSIGNED: what is wrong with it

    @property
    def ok(self) -> bool:
        return self.verdict == KEEP


def judge_receipt(
    rc: receipt_mod.Receipt,
    *,
    origin: bytes,
    issuers: Collection[bytes] | None,
    held_hash: bytes | None,
) -> ReceiptCheck:
    """Whether to keep ``rc`` for the log of ``origin``: its signed bytes verify under its
    issuer; it is for ``origin``; it covers something (seq >= 1); its issuer is one of
    ``issuers`` (None: any issuer); the laptop holds that seq (``held_hash``, its record hash
    there, None when not held) with that very hash. Checked in this order."""
    try:
        signed = receipt_mod.decode(rc.raw)
        signed.check(signed.issuer)
    except ProtocolError as exc:
        return ReceiptCheck(UNSIGNED, rc, exc.message)
    if signed.origin != origin:
        return ReceiptCheck(OTHER_ORIGIN, signed)
    if signed.seq == 0:
        return ReceiptCheck(EMPTY, signed)
    if issuers is not None and signed.issuer not in issuers:
        return ReceiptCheck(WRONG_ISSUER, signed)
    if held_hash is None:
        return ReceiptCheck(NOT_HELD, signed)
    if held_hash != signed.hash:
        return ReceiptCheck(MISMATCH, signed)
    return ReceiptCheck(KEEP, signed)


def relayed_confirmation(
    hub_public: bytes,
    upstream: bytes | None,
    upstream_sig: bytes | None,
    confirmed: bytes | None,
    *,
    origin: bytes,
    last_seq: int,
) -> receipt_mod.Receipt | None:
    """Upstream's receipt the pinned hub relays ("confirmed upstream"), once it checks out.

    None when there is nothing to take: the hub names no upstream or relays no receipt, or the
    receipt is for another log or beyond this laptop's last entry. Raises SignatureError when
    the hub did not sign ``upstream`` as its upstream (``upstream_sig``, from its hello) or
    upstream did not sign the receipt; CodecError when the receipt is malformed. The caller
    still judges it (``judge_receipt`` with ``issuers=[upstream]``) against its own record.
    """
    if confirmed is None or upstream is None or upstream_sig is None:
        return None
    receipt_mod.check_upstream(hub_public, upstream, upstream_sig)
    rc = receipt_mod.decode(confirmed)
    rc.check(upstream)
    if rc.origin != origin or rc.seq > last_seq:
        return None
    return rc


# -- a push round ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PushReply:
    """The hub's answer to ``POST /v1/push``."""

    accepted: int = 0
    duplicate: int = 0
    refused: list[dict[str, Any]] = field(default_factory=list)  # rejections, then forks
    receipts: list[bytes] = field(default_factory=list)


def parse_push_reply(obj: Any) -> PushReply:
    """The push reply as a ``PushReply`` (CodecError when it is not one)."""
    if not isinstance(obj, dict):
        raise CodecError("the hub's push reply is not a map")
    counts = [obj.get("accepted", 0), obj.get("duplicate", 0)]
    lists = [obj.get("rejected", []), obj.get("forks", []), obj.get("receipts", [])]
    if any(type(n) is not int for n in counts) or any(type(x) is not list for x in lists):
        raise CodecError("the hub's push reply has counts that are not numbers or lists")
    rejected, forks, receipts = lists
    refused = [x for x in rejected + forks if isinstance(x, dict)]
    return PushReply(counts[0], counts[1], refused, [r for r in receipts if type(r) is bytes])


@dataclass(frozen=True, slots=True)
class Step:
    """What one push reply means: the hub now holds the log up to ``to``, or (``stuck``) it
    took nothing after ``after``, with the first refusal's ``code`` and ``reason``."""

    after: int
    to: int
    stuck: bool = False
    code: str = ""
    reason: str = ""  # "#SEQ: REASON (+N more)", or "" when the hub gave none


NOT_TAKEN = "not_taken"  # stuck, and the hub said nothing about why


class Pusher:
    """One push round to one hub, from the seq the hub holds (``after``) to ``last``.

    ``next()`` says which records to send (those after a seq, at most ``batch`` of them);
    ``replied()`` takes the seqs of the receipts kept from the reply and says whether the round
    moved forward; ``too_big()`` halves the batch after a 413 (False once it is down to one
    record: smaller is impossible).
    """

    def __init__(self, after: int, last: int, batch: int):
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.sent = after
        self.last = last
        self.batch = batch

    def next(self) -> tuple[int, int] | None:
        """(after, limit): send the records after seq ``after``, at most ``limit``; None when
        the hub holds everything."""
        return (self.sent, self.batch) if self.sent < self.last else None

    def too_big(self) -> bool:
        if self.batch == 1:
            return False
        self.batch = max(1, self.batch // 2)
        return True

    def replied(self, kept: Iterable[int], refused: Sequence[Mapping[str, Any]]) -> Step:
        newest = max([self.sent, *kept])
        if newest > self.sent:
            step = Step(self.sent, newest)
            self.sent = newest
            return step
        if not refused:
            return Step(self.sent, self.sent, True, NOT_TAKEN, "")
        first = refused[0]
        more = f" (+{len(refused) - 1} more)" if len(refused) > 1 else ""
        reason = f"#{first.get('seq')}: {first.get('reason')}{more}"
        return Step(self.sent, self.sent, True, str(first.get("code")), reason)
