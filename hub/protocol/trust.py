"""Who may send what, and who vouches for whom (DESIGN §3 "Identities"; sans-IO).

Enrollment policy as pure functions over plain values. Each returns the changes to make; the
hub's store writes them in one transaction and applies them to its memory after the COMMIT.

- ``forward_limit``: the highest seq of a device's log that may be counted and forwarded
  (approved: all it sent; revoked: up to its cut; pending or forked: nothing).
- ``enroll``: a known device enrolling again may give itself a name once; its role is fixed
  when the hub first records it (a laptop must never turn itself into a hub: hubs vouch for
  others), so asking for another role is refused (``role_change``) and changes nothing.
- ``approve``: approving a device approves, transitively, every pending device an approved
  hub vouches for. ``check_approvable``: a forked device cannot be approved, and a hub only
  with its role confirmed by the coordinator (``role_not_confirmed``).
- ``revoke``: revoking a device cuts its log at its current head (what it sent before stays,
  however often it is revoked); revoking a hub revokes every device approved here only
  through that hub's word.
- ``accept_endorsements``: endorsements from lower hubs are taken when they chain to a hub
  known here (role hub, not forked); the rest wait for a later stream. An approved hub's word
  approves the device it names; a pending hub's word makes it pending "through that hub".
  A chain may arrive in any order. A device a pending hub vouches for is admitted only while
  there is room for one more pending device (``quota.Ledger``); otherwise its endorsement is
  left out, as one that chains to nothing known.
- ``chain_for``: the endorsements an upstream needs to link devices to this node.
- ``backlog``: what upstream does not hold yet.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from .enroll import Endorsement
from .errors import DeviceError, ProtocolError
from .ingest import APPROVED, PENDING, REVOKED
from .quota import Ledger

LAPTOP = "laptop"
HUB = "hub"

K = TypeVar("K", bound=Hashable)


class Member(Protocol):
    """What trust needs to know about an enrolled device (the store's device row is one)."""

    @property
    def public(self) -> bytes: ...
    @property
    def node_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def forked(self) -> bool: ...
    @property
    def approved_at(self) -> int | None: ...
    @property
    def revoked_after_seq(self) -> int: ...
    @property
    def endorsement(self) -> bytes | None:
        """This node's own endorsement of the device, when it approved it directly."""
        ...


Devices = Mapping[bytes, Member]  # public key -> device
Endorsements = Mapping[bytes, Mapping[bytes, bytes]]  # device -> hub that vouches -> raw


# -- what one device may do -------------------------------------------------------------------


def forward_limit(d: Member, head: int) -> int:
    """Highest seq of ``d``'s log (held up to ``head``) that may be counted and forwarded."""
    if d.forked:
        return 0
    if d.state == APPROVED:
        return head
    if d.state == REVOKED:
        return min(head, d.revoked_after_seq)
    return 0


ROLE_CHANGE = "role_change"
ROLE_NOT_CONFIRMED = "role_not_confirmed"


def check_approvable(d: Member, role: str | None = None) -> None:
    """Raise if the coordinator may not approve ``d`` as ``role`` (None: not named). A hub
    vouches for every device it approves, so approving one needs its role named."""
    if (d.role == HUB and role != HUB) or (role is not None and role != d.role):
        raise ProtocolError(
            f"device {d.node_id} ({d.name or 'no name'}) enrolled as a {d.role}"
            + (f", not a {role}" if role is not None and role != d.role else "")
            + (
                f": approve it with --as {d.role}. Approving a hub means trusting every device "
                "it approves: their entries count here without your approval."
                if d.role == HUB
                else ""
            ),
            code=ROLE_NOT_CONFIRMED,
        )
    if d.forked:
        raise DeviceError(
            f"device {d.node_id} has a fork; it cannot be approved. Enroll the laptop again "
            "with a fresh data folder (c1client init) and re-enter its forms."
        )


@dataclass(frozen=True, slots=True)
class Enrollment:
    """What an enrollment request of a known device changes."""

    name: str | None = None  # the name to give it (it had none)


def enroll(d: Member, name: str, role: str) -> Enrollment:
    """Raise ProtocolError ``role_change`` (nothing changes) if ``role`` is not ``d``'s."""
    if role != d.role:
        raise ProtocolError(
            f"device {d.node_id} enrolled as a {d.role}; it cannot become a {role}. "
            "Enroll under a new key instead",
            code=ROLE_CHANGE,
        )
    return Enrollment(name if name and not d.name else None)


# -- cascades ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Approval:
    public: bytes
    via: bytes | None = None  # the hub whose word carried it; None: the device asked for


@dataclass(frozen=True, slots=True)
class Revocation:
    public: bytes
    after_seq: int  # entries up to this seq stay counted
    via: bytes | None = None  # the revoked hub it was approved through; None: the device asked


@dataclass(frozen=True, slots=True)
class Keep:
    """Store this endorsement (replacing one from the same hub for the same device)."""

    endorsement: Endorsement


@dataclass(frozen=True, slots=True)
class Admit:
    """A device first known here through ``endorsement``, admitted in ``state``."""

    endorsement: Endorsement
    state: str


Step = Keep | Admit | Approval


class _Book:
    """The devices and endorsements as they stand while a cascade runs: the caller's
    mappings plus the changes decided so far (the caller's mappings are never changed)."""

    def __init__(self, devices: Devices, endorsements: Endorsements):
        self._devices = devices
        self._endorsements = endorsements
        self._states: dict[bytes, str] = {}
        self._admitted: dict[bytes, str] = {}  # public -> role
        self._added: dict[bytes, dict[bytes, bytes]] = {}
        self._vouched: dict[bytes, dict[bytes, None]] | None = None  # hub -> devices, lazily

    def known(self, p: bytes) -> bool:
        return p in self._devices or p in self._admitted

    def state(self, p: bytes) -> str:
        return self._states.get(p) or self._devices[p].state

    def role(self, p: bytes) -> str:
        return self._admitted.get(p) or self._devices[p].role

    def forked(self, p: bytes) -> bool:
        return p not in self._admitted and self._devices[p].forked

    def own(self, p: bytes) -> bytes | None:
        return None if p in self._admitted else self._devices[p].endorsement

    def endorsers(self, p: bytes) -> Mapping[bytes, bytes]:
        return self._added.get(p) or self._endorsements.get(p, {})

    def endorsed(self) -> Iterator[tuple[bytes, Mapping[bytes, bytes]]]:
        """(device, hubs vouching for it) for every device with an endorsement."""
        for p in self._endorsements:
            yield p, self.endorsers(p)
        for p, by in self._added.items():
            if p not in self._endorsements:
                yield p, by

    def vouched_by(self, hub: bytes) -> list[bytes]:
        """The devices ``hub`` has an endorsement for (an index built at the first question,
        so that a cascade costs what it touches, not every endorsement held)."""
        if self._vouched is None:
            self._vouched = {}
            for p, by in self.endorsed():
                for h in by:
                    self._vouched.setdefault(h, {})[p] = None
        return list(self._vouched.get(hub, ()))

    def keep(self, e: Endorsement) -> None:
        self._added[e.device] = {**self.endorsers(e.device), e.hub: e.raw}
        if self._vouched is not None:
            self._vouched.setdefault(e.hub, {})[e.device] = None

    def admit(self, e: Endorsement, state: str) -> None:
        self._admitted[e.device] = e.role
        self._states[e.device] = state

    def approve(self, p: bytes, via: bytes | None) -> list[Approval]:
        out = [Approval(p, via)]
        self._states[p] = APPROVED
        if self.role(p) == HUB:
            for q in self.vouched_by(p):
                if self.known(q) and self.state(q) == PENDING:
                    out += self.approve(q, p)
        return out

    def revoke(self, p: bytes, heads: Mapping[bytes, int], via: bytes | None) -> list[Revocation]:
        if self.state(p) == APPROVED:
            cutoff = heads.get(p, 0)
        elif self.state(p) == REVOKED and p not in self._states:
            cutoff = self._devices[p].revoked_after_seq  # revoked before: the cut stands
        else:
            cutoff = 0
        out = [Revocation(p, cutoff, via)]
        self._states[p] = REVOKED
        if self.role(p) != HUB:
            return out
        for q in self.vouched_by(p):
            by = self.endorsers(q)
            if not self.known(q) or self.state(q) != APPROVED:
                continue
            if self.own(q) is not None:
                continue  # approved here directly too: that approval stands
            if not any(self.known(h) and self.state(h) == APPROVED for h in by):
                out += self.revoke(q, heads, p)
        return out


def approve(public: bytes, devices: Devices, endorsements: Endorsements) -> list[Approval]:
    """Approve ``public`` and, transitively, every pending device an approved hub vouches for:
    the device itself first, then the cascade in the order to apply it."""
    return _Book(devices, endorsements).approve(public, None)


def revoke(
    public: bytes, devices: Devices, endorsements: Endorsements, heads: Mapping[bytes, int]
) -> list[Revocation]:
    """Revoke ``public`` after its head (``heads[public]``, if approved) and, for a hub, every
    device approved here only through hubs now revoked: a stolen hub stops vouching."""
    return _Book(devices, endorsements).revoke(public, heads, None)


def accept_endorsements(
    incoming: Sequence[Endorsement],
    devices: Devices,
    endorsements: Endorsements,
    ledger: Ledger | None = None,
) -> list[Step]:
    """Which of ``incoming`` (signatures already checked) to keep, which devices they admit
    and which approvals they carry, in the order to apply them. Endorsements already held
    byte for byte are skipped; those that chain to no hub known here are left out (a later
    stream may bring the missing link). A chain may come in any order. With a ``ledger``, an
    endorsement that would admit a pending device past the pending quota is left out too (and
    the ledger counts the pending devices admitted).

    The order is that of passes over ``incoming``, each taking, in order, every endorsement
    whose hub is known by then, until a pass takes none. It is computed without the passes:
    an endorsement waits on its hub and is taken once that hub is admitted, in the same pass
    if it comes later in ``incoming``, in the next one otherwise (a heap of (pass,
    position)), so a long chain sent backwards costs n log n, not n squared."""
    book = _Book(devices, endorsements)
    steps: list[Step] = []
    todo = [e for e in incoming if book.endorsers(e.device).get(e.hub) != e.raw]

    def ready(hub: bytes) -> bool:
        return book.known(hub) and book.role(hub) == HUB and not book.forked(hub)

    heap: list[tuple[int, int]] = []  # (pass, position in todo)
    waiting: dict[bytes, list[int]] = {}  # a hub not known yet -> positions waiting on it
    for i, e in enumerate(todo):
        if ready(e.hub):
            heap.append((1, i))
        elif not book.known(e.hub):
            waiting.setdefault(e.hub, []).append(i)
    heapq.heapify(heap)
    while heap:
        at, i = heapq.heappop(heap)
        e = todo[i]
        vouched = book.state(e.hub) == APPROVED
        if not book.known(e.device) and not vouched and ledger is not None:
            if ledger.room_for_device() is not None:
                continue  # over the pending quota
            ledger.add_device()
        steps.append(Keep(e))
        book.keep(e)
        if not book.known(e.device):
            state = APPROVED if vouched else PENDING
            steps.append(Admit(e, state))
            book.admit(e, state)
            if ready(e.device):
                for j in waiting.pop(e.device, ()):
                    heapq.heappush(heap, (at if j > i else at + 1, j))
        elif vouched and book.state(e.device) == PENDING:
            steps += book.approve(e.device, e.hub)
    return steps


# -- upstream ---------------------------------------------------------------------------------


def chain_for(
    publics: Iterable[bytes], devices: Devices, endorsements: Endorsements
) -> list[bytes]:
    """Endorsements an upstream needs to link ``publics`` to this node: each device's own
    endorsement (approved here) or the ones received for it from approved hubs, then those
    hubs', and so on. Each once, in a stable order."""
    out: dict[bytes, None] = {}
    seen: set[bytes] = set()
    todo = list(publics)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        d = devices.get(p)
        if d is not None and d.endorsement is not None:
            out[d.endorsement] = None
        for hub, raw in endorsements.get(p, {}).items():
            h = devices.get(hub)
            if h is not None and h.state == APPROVED:
                out[raw] = None
                todo.append(hub)
    return list(out)


def backlog(limits: Mapping[K, int], confirmed: Mapping[K, int]) -> int:
    """Records upstream does not hold yet: per device, its forward limit minus what upstream
    confirmed, summed."""
    return sum(max(limit - confirmed.get(k, 0), 0) for k, limit in limits.items())
