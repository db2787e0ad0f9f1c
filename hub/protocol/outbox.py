"""The upstream outbox: one hub's stream to its upstream, as a state machine without I/O
(DESIGN §2.4, §2.8; STYLE 1, 3).

The outbox is not a queue. It is "what upstream does not hold yet", computed from upstream's
per-origin version vector. A round goes: hello (pin the upstream's key at first contact, refuse
another later), enroll, audit (does upstream still hold what it signed for?), hand over fork
evidence, ask the heads of origins whose position is unknown, push one batch with the
endorsements upstream needs, and read the answer. Upstream's signed receipts move each origin's
cursor; nothing else does, so an answer lost after upstream committed costs one resend that
upstream treats as a no-op, never a loss. A refused record parks its origin; an idle hub still
says hello every ``HEARTBEAT_S``; failures back off with full jitter and honour Retry-After.

``Outbox`` makes every one of these decisions and does none of the I/O. A driver (the real one
is ``hub/forwarder.py``) loops::

    step = box.next_step(holdings, now)      # Holdings: what the store holds, as plain values
    Wait(until, on_change)  sleep until then (or until a commit stores records, if on_change)
    Hello()                 call hello            -> box.hello_answered(public, now)
    Enroll(upstream)        call enroll           -> box.enroll_answered(reply, now)
    AskHeads(origins)       call heads            -> box.heads_answered(reply, holdings, now)
    PushFork(...)           push the two records  -> box.fork_answered(reply, now)
    Push(records, endorsements)                   -> box.push_answered(reply, holdings, t0, now)
    ReadForks()             the store's fork evidence          -> box.forks_read(evidence)
    ReadRecords(dev, origin, after, limit)   records after a seq -> box.records_read(raws)
    ReadChain(origins)      the endorsement chain of origins    -> box.chain_read(chain)
    ReadHeld(keys)          this hub's record at (origin, seq)  -> box.held_read(raws, now)
    ReadAges(keys)          when (dev, seq) arrived here        -> box.ages_read(times)

    a call that failed      -> box.call_failed(message, now, retry_after=..., too_big=...)
    anything else that broke -> box.crashed(now)
    then, after every answer: for effect in box.effects(): apply it, in order

Effects are the store's writes (``Pin``, ``Confirm``, ``Unconfirm``, ``Reject``) and the events
worth a log line (``Failed``, ``Recovered``, ``Enrollment``, ``Refused``, ``Lost``,
``Diverged``, ``ForkSent``). ``now`` is monotonic seconds; nothing here reads a clock.
"""

from __future__ import annotations

import collections
import random
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

from . import codec, identity, receipt, record
from .errors import CodecError, ProtocolError
from .pacing import Backoff, BatchSizer

IDLE_POLL = 2.0  # with nothing to send, look again this often (or at the next commit)
HEARTBEAT_S = 15.0  # an idle hub checks on its upstream this often
STUCK_RETRY_S = 120.0  # a device parked after a refusal is retried after this long
PENDING_RECHECK_S = 10.0  # while pending upstream, ask again this often whether approved
MAX_BATCH_BYTES = 4 * 1024 * 1024
HEADS_PER_CALL = 1000  # origins per heads query
AGE_PROBES = 200  # devices looked at for the age of the backlog

UP = "up"
DOWN = "down"


# -- what the store holds, as the outbox needs it ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Holdings:
    """This hub's side, as plain values (a driver may pass live read-only views)."""

    limits: Mapping[int, int]  # dev -> highest seq that may be forwarded (0: held here)
    confirmed: Mapping[int, int]  # dev -> seq upstream signed a receipt for
    rejected: Container[int]  # devs with an upstream refusal on record
    publics: Mapping[int, bytes]  # dev -> public key
    devs: Mapping[bytes, int]  # public key -> dev
    forks: int  # forks recorded at this hub


# -- steps: what the driver does next -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Wait:
    until: float
    on_change: bool = False  # wake early when a commit stores new records


@dataclass(frozen=True, slots=True)
class Hello:
    pass


@dataclass(frozen=True, slots=True)
class Enroll:
    upstream: bytes  # the pinned key the request is addressed to


@dataclass(frozen=True, slots=True)
class AskHeads:
    origins: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class PushFork:
    dev: int
    seq: int
    records: tuple[bytes, ...]  # the record held here and the other one signed for that seq


@dataclass(frozen=True, slots=True)
class Push:
    records: tuple[bytes, ...]
    endorsements: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ReadForks:
    pass


@dataclass(frozen=True, slots=True)
class ReadRecords:
    dev: int
    origin: bytes
    after: int
    limit: int


@dataclass(frozen=True, slots=True)
class ReadChain:
    origins: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ReadHeld:
    keys: tuple[tuple[bytes, int], ...]  # (origin, seq)


@dataclass(frozen=True, slots=True)
class ReadAges:
    keys: tuple[tuple[int, int], ...]  # (dev, seq)


Step = (
    Wait | Hello | Enroll | AskHeads | PushFork | Push
    | ReadForks | ReadRecords | ReadChain | ReadHeld | ReadAges
)  # fmt: skip


# -- effects: what the driver applies ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pin:
    public: bytes  # first contact: remember this upstream key


@dataclass(frozen=True, slots=True)
class Confirm:
    dev: int
    seq: int
    hash: bytes
    receipt: bytes


@dataclass(frozen=True, slots=True)
class Unconfirm:
    dev: int
    seq: int
    hash: bytes


@dataclass(frozen=True, slots=True)
class Reject:
    dev: int
    seq: int | None
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class Failed:
    message: str
    delay: float  # the backoff chosen
    first: bool  # the first failure in a row (later ones are quieter)


@dataclass(frozen=True, slots=True)
class Recovered:
    pass


@dataclass(frozen=True, slots=True)
class Enrollment:
    was: str | None
    state: str | None
    code: str | None


@dataclass(frozen=True, slots=True)
class Refused:
    dev: int
    seq: int
    code: str
    reason: str
    retry_s: float


@dataclass(frozen=True, slots=True)
class Lost:
    dev: int
    held: int  # what upstream holds now
    promised: int  # what it had signed for


@dataclass(frozen=True, slots=True)
class Diverged:
    dev: int
    seq: int  # upstream holds another record at this seq


@dataclass(frozen=True, slots=True)
class ForkSent:
    dev: int
    seq: int
    recorded: bool  # upstream saw the fork (it may hold too little of that log yet)


Effect = (
    Pin | Confirm | Unconfirm | Reject
    | Failed | Recovered | Enrollment | Refused | Lost | Diverged | ForkSent
)  # fmt: skip


# -- decisions as plain functions -----------------------------------------------------------------


def candidates(
    limits: Mapping[int, int],
    confirmed: Mapping[int, int],
    cursor: Mapping[int, int],
    parked_until: Mapping[int, float],
    now: float,
) -> list[int]:
    """Devices with records beyond what upstream is known to hold, not parked at ``now``.

    ``limits[dev]`` is the highest seq that may be forwarded (0 for held devices);
    upstream is known to hold ``max(cursor, confirmed)``.
    """
    return [
        dev
        for dev, limit in limits.items()
        if limit > max(cursor.get(dev, 0), confirmed.get(dev, 0))
        and parked_until.get(dev, 0.0) <= now
    ]


def causes(
    items: Iterable[Any], sent_to: Mapping[int, int], device_of: Callable[[str], int | None]
) -> dict[int, dict[str, Any]]:
    """Per device of this batch, the refused record with the lowest seq: the cause (the later
    ones wait behind it). Items that name no device of the batch, or no whole seq, are
    ignored: an unsigned reply must not park a device on a record it was never sent."""
    first: dict[int, dict[str, Any]] = {}
    for item in items:
        if not isinstance(item, dict) or type(item.get("seq")) is not int:
            continue
        origin = item.get("origin")
        dev = device_of(origin) if isinstance(origin, str) else None
        if dev is None or dev not in sent_to:
            continue
        if dev not in first or item["seq"] < first[dev]["seq"]:
            first[dev] = item
    return first


def confirmed_by_duplicates(
    ahead: Mapping[int, int], sent_to: Mapping[int, int], refused: Iterable[int]
) -> dict[int, int]:
    """Devices whose receipt names more than this hub holds (another hub of the room
    forwarded more of the log) and for which upstream refused nothing just sent: every record
    sent was accepted or was byte-for-byte a duplicate, so upstream holds this hub's records up
    to the last one sent. Returns dev -> that seq."""
    refused = set(refused)
    return {
        dev: sent_to[dev]
        for dev, up_seq in ahead.items()
        if dev in sent_to and dev not in refused and up_seq >= sent_to[dev]
    }


def lost_upstream(heads: Mapping[int, int], confirmed: Mapping[int, int]) -> dict[int, int]:
    """Devices for which upstream now holds less than it signed receipts for (restored from a
    backup, say): dev -> the seq upstream holds now."""
    return {dev: held for dev, held in heads.items() if dev in confirmed and held < confirmed[dev]}


def parse_heads(reply: Mapping[str, Any], devs: Mapping[bytes, int]) -> dict[int, int]:
    """dev -> seq from a heads reply's ``[origin, seq, hash]`` items, for origins known here."""
    items = reply.get("heads", [])
    return {
        devs[item[0]]: item[1]
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, list) and len(item) == 3 and type(item[0]) is bytes
        and type(item[1]) is int and item[0] in devs
    }  # fmt: skip


# -- the state machine --------------------------------------------------------------------------


@dataclass(slots=True)
class _Batch:
    """One push being assembled: records read device by device, up to the size and bytes."""

    devs: list[int]
    size: int
    records: list[bytes] = field(default_factory=list)
    nbytes: int = 0
    next: int = 0  # index in devs of the next device to read
    sent_to: dict[int, int] = field(default_factory=dict)  # dev -> last seq sent
    held: dict[tuple[bytes, int], bytes] = field(default_factory=dict)  # what was sent
    origins: dict[int, bytes] = field(default_factory=dict)  # dev -> public key, in order
    endorsements: tuple[bytes, ...] = ()
    before: int = 0  # confirmations (sum of seqs) before the push


@dataclass(slots=True)
class _Answer:
    """An answer with receipts, waiting for this hub's records to check them against."""

    receipts: list[tuple[int, receipt.Receipt]]
    bad: str | None  # a receipt that did not check out (those before it still count)
    known: dict[tuple[bytes, int], bytes]
    # dev -> (origin, what upstream holds now, what it had signed for)
    lost: dict[int, tuple[bytes, int, int]] = field(default_factory=dict)
    items: list[Any] = field(default_factory=list)  # refusals and forks of a push


class Outbox:
    """The upstream state machine of one hub (see the module docstring for the loop)."""

    def __init__(
        self, label: str, pinned: bytes | None, rng: random.Random, *, kbps: int = 0
    ) -> None:
        self.label = label  # the upstream's address, for messages
        self.pinned = pinned  # the upstream key this hub is enrolled at
        self.rng = rng
        self.kbps = kbps
        self.heartbeat_s = HEARTBEAT_S
        self.park_s = STUCK_RETRY_S
        self.recheck_s = PENDING_RECHECK_S
        self.idle_s = IDLE_POLL
        self.backoff = Backoff(base=0.5, cap=30.0)
        self.sizer = BatchSizer()
        self.state = DOWN
        self.last_error: str | None = None
        self.enrollment: str | None = None  # this hub's state upstream, as last answered
        self.code: str | None = None  # the comparison code to read to the national side
        self.pushed = 0
        self.oldest_received: int | None = None  # arrival time of the oldest unsent record
        self.cursor: dict[int, int] = {}  # dev -> seq upstream is known to hold
        self.parked: dict[int, float] = {}  # dev -> when to retry after a refusal
        self.drained: collections.deque[tuple[float, int]] = collections.deque(maxlen=64)
        self._connected = False
        self._warned = False
        self._last_contact = 0.0
        self._enrolled_at = 0.0
        self._endorsed: set[bytes] = set()  # endorsements upstream got on this connection
        self._forks_sent: set[tuple[int, int]] = set()
        self._effects: list[Effect] = []
        self._out: Step | None = None  # handed to the driver, not answered yet
        self._rest = False
        self._pace_until = 0.0
        self._ages_due = False
        # the round in progress
        self._phase: str | None = None
        self._round_at = 0.0
        self._reconnect = False
        self._heartbeat = False
        self._chunks: list[list[int]] = []
        self._unknown: list[int] = []
        self._devs: list[int] = []
        self._fork_queue: list[PushFork] = []
        self._batch: _Batch | None = None
        self._answer: _Answer | None = None

    # -- what the driver asks -------------------------------------------------------------------

    def next_step(self, h: Holdings, now: float) -> Step:
        """What to do next. The same step again until it is answered; a ``Wait`` only once."""
        if self._out is None:
            self._out = self._decide(h, now)
        step = self._out
        if isinstance(step, Wait):
            self._out = None
        return step

    def effects(self) -> list[Effect]:
        """What to apply, in order, since the last call."""
        out, self._effects = self._effects, []
        return out

    def drain_rate(self) -> float:
        """Recent confirmations per second."""
        if len(self.drained) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self.drained[0], self.drained[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    # -- answers --------------------------------------------------------------------------------

    def hello_answered(self, public: bytes, now: float) -> None:
        """Upstream proved it holds ``public`` (the driver checked the nonce proof)."""
        self._take(Hello)
        self._last_contact = now
        if self.pinned is None:
            self.pinned = public
            self._effects.append(Pin(public))
        elif public != self.pinned:
            self._fail(
                f"REFUSED: {self.label} has identity {identity.fingerprint(public)}, but this "
                f"hub is enrolled at {identity.fingerprint(self.pinned)}; check --upstream",
                now,
            )
            return
        self._phase = "enroll"

    def enroll_answered(self, reply: Any, now: float) -> None:
        self._take(Enroll)
        self._last_contact = self._enrolled_at = now
        if not isinstance(reply, dict):
            self._fail(f"{self.label} answered an enrollment with something else", now, reset=True)
            return
        state, code = reply.get("state"), reply.get("code")
        was, self.enrollment = self.enrollment, state if isinstance(state, str) else None
        self.code = code if isinstance(code, str) else None
        if (self.enrollment == "pending") != (was == "pending"):
            self._effects.append(Enrollment(was, self.enrollment, self.code))
        if self._phase == "recheck":
            self._phase = "forks"
        else:
            self._endorsed.clear()
            self._phase = "audit_start"

    def heads_answered(self, reply: Any, h: Holdings, now: float) -> None:
        self._take(AskHeads)
        self._last_contact = now
        if not isinstance(reply, dict):
            self._fail(f"{self.label} answered a heads query with something else", now, reset=True)
            return
        answer = self._receipts(reply.get("receipts", []), h, {})
        if self._phase == "audit":
            for dev, held in lost_upstream(parse_heads(reply, h.devs), h.confirmed).items():
                answer.lost[dev] = (h.publics[dev], held, h.confirmed[dev])
        self._settle_or_read(answer, now)

    def push_answered(self, reply: Any, h: Holdings, sent_at: float, now: float) -> None:
        self._take(Push)
        batch = self._batch
        assert batch is not None
        elapsed = now - sent_at
        self._last_contact = now
        self.sizer.succeeded(elapsed)
        self.pushed += len(batch.records)
        self._endorsed.update(batch.endorsements)  # upstream has them: once per connection
        if self.kbps > 0:  # a push of N bytes takes at least N / cap seconds
            body = codec.pack({"records": batch.records, "endorsements": list(batch.endorsements)})
            self.spent(len(body), elapsed, now)
        if not isinstance(reply, dict):
            self._fail(f"{self.label} answered a push with something else", now, reset=True)
            return
        answer = self._receipts(reply.get("receipts", []), h, batch.held)
        for key in ("rejected", "forks"):
            items = reply.get(key, [])
            answer.items += items if isinstance(items, list) else []
        self._settle_or_read(answer, now)

    def spent(self, nbytes: int, elapsed: float, now: float) -> None:
        """``nbytes`` went upstream in ``elapsed`` seconds (a push, or a scan chunk sent while
        the stream was idle): under ``kbps``, the next call waits until the cap allows it."""
        if self.kbps > 0:
            self._pace_until = max(self._pace_until, now + nbytes / (self.kbps * 1024.0) - elapsed)

    def fork_answered(self, reply: Any, now: float) -> None:
        step = self._take(PushFork)
        self._last_contact = now
        if not isinstance(reply, dict):
            self._fail(f"{self.label} answered a push with something else", now, reset=True)
            return
        self._forks_sent.add((step.dev, step.seq))
        self._fork_queue.pop(0)
        self._effects.append(ForkSent(step.dev, step.seq, bool(reply.get("forks"))))

    def forks_read(self, evidence: Iterable[tuple[int, int, bytes, bytes | None]]) -> None:
        """(dev, seq, the other record, the record held here) of every fork at this hub."""
        self._take(ReadForks)
        self._fork_queue = [
            PushFork(dev, seq, tuple(r for r in (held, raw) if r is not None))
            for dev, seq, raw, held in evidence
            if (dev, seq) not in self._forks_sent
        ]
        self._phase = "fork_push"

    def records_read(self, raws: Sequence[bytes]) -> None:
        step = self._take(ReadRecords)
        batch = self._batch
        assert batch is not None
        batch.next += 1
        raws = raws[: step.limit]
        if not raws:
            return
        for i, raw in enumerate(raws):
            batch.records.append(raw)
            batch.nbytes += len(raw)
            batch.held[(step.origin, step.after + 1 + i)] = raw
        batch.origins[step.dev] = step.origin
        batch.sent_to[step.dev] = step.after + len(raws)

    def chain_read(self, chain: Iterable[bytes]) -> None:
        """The endorsements upstream needs for this batch's origins (the store's chain)."""
        self._take(ReadChain)
        assert self._batch is not None
        self._batch.endorsements = tuple(e for e in chain if e not in self._endorsed)
        self._phase = "push"

    def held_read(self, raws: Mapping[tuple[bytes, int], bytes | None], now: float) -> None:
        """This hub's records at the keys asked for (None where it holds none)."""
        self._take(ReadHeld)
        answer = self._answer
        assert answer is not None
        self._answer = None
        self._settle(answer, raws, now)

    def ages_read(self, times: Iterable[int | None]) -> None:
        """When each record asked for arrived here (unix seconds; None if not held)."""
        self._take(ReadAges)
        known = [t for t in times if t is not None]
        self.oldest_received = min(known) if known else None
        if self._phase == "ages":
            self._phase = "fill"

    def call_failed(
        self, message: str, now: float, *, retry_after: float | None = None, too_big: bool = False
    ) -> None:
        """The call of the step handed out failed: unreachable, busy, refused, not c1hub."""
        assert isinstance(self._out, (Hello, Enroll, AskHeads, PushFork, Push)), self._out
        self._fail(message, now, retry_after=retry_after, too_big=too_big)

    def crashed(self, now: float) -> None:
        """Something unexpected broke the step handed out or the writing of its effects (a
        store error, a bug): drop the round, forget the cursors (what was concluded may not
        all be written) and try again after a backoff."""
        aging = isinstance(self._out, ReadAges) and self._phase is None
        self._drop_round()
        if not aging:  # a failed look at the backlog's age costs nothing more
            self.cursor.clear()  # what was concluded may not all be written: ask again
            self.backoff.failed(now, self.rng)

    # -- the round -----------------------------------------------------------------------------

    def _decide(self, h: Holdings, now: float) -> Step:
        for dev in [d for d in self.parked if d not in h.rejected]:
            del self.parked[dev]  # upstream confirmed past the refusal
        while True:
            if self._ages_due:
                self._ages_due = False
                ages = self._ages(h, self.candidates(h, now))
                if ages is not None:
                    return ages
            if self._phase is None:
                if now < self._pace_until:
                    return Wait(self._pace_until)
                if self.backoff.waiting(now):
                    return Wait(self.backoff.until)
                if self._rest:
                    self._rest = False
                    return Wait(now + self.idle_s, on_change=True)
                self._round_at = now
                self._reconnect = not self._connected
                self._heartbeat = False
                if not self._connected:
                    self._phase = "hello"
                elif self.enrollment == "pending" and now - self._enrolled_at >= self.recheck_s:
                    self._phase = "recheck"  # approved since? status must say so
                else:
                    self._phase = "forks"
            step = self._continue(h, now)
            if step is not None:
                return step

    def _continue(self, h: Holdings, now: float) -> Step | None:
        """The next step of the round in progress; None when the round is over."""
        while True:
            phase = self._phase
            if phase == "hello":
                return Hello()
            if phase in ("enroll", "recheck"):
                assert self.pinned is not None
                return Enroll(self.pinned)
            if phase == "audit_start":
                devs = [dev for dev, seq in h.confirmed.items() if seq > 0]
                self._chunks = _chunked(devs)
                self._phase = "audit"
            elif phase in ("audit", "heads") and self._chunks:
                return AskHeads(tuple(h.publics[dev] for dev in self._chunks[0]))
            elif phase == "audit":
                self._connected = True
                if self._reconnect:
                    self.cursor.clear()
                if self._heartbeat:
                    self._end_round(0)
                    return None
                self._phase = "forks"
            elif phase == "forks":
                if h.forks > len(self._forks_sent):
                    self._phase = "read_forks"
                    return ReadForks()
                self._phase = "heads_start"
            elif phase == "fork_push":
                if self._fork_queue:
                    return self._fork_queue[0]
                self._phase = "heads_start"
            elif phase == "heads_start":
                devs = self.candidates(h, self._round_at)
                self._unknown = [dev for dev in devs if dev not in self.cursor]
                self._chunks = _chunked(self._unknown)
                self._phase = "heads"
            elif phase == "heads":
                for dev in self._unknown:
                    self.cursor.setdefault(dev, h.confirmed.get(dev, 0))
                self._devs = self.candidates(h, self._round_at)
                self._batch = _Batch(self._devs, self.sizer.size)
                self._phase = "ages"
                ages = self._ages(h, self._devs)
                if ages is not None:
                    return ages
                self._phase = "fill"
            elif phase == "fill":
                if not self._devs:
                    if now - self._last_contact >= self.heartbeat_s:
                        # idle: still notice (and show) an upstream that went away
                        self._phase, self._heartbeat, self._reconnect = "hello", True, False
                        continue
                    self._end_round(0)
                    return None
                read = self._next_read(h)
                if read is not None:
                    return read
                assert self._batch is not None
                if not self._batch.records:
                    self._end_round(0)
                    return None
                self._batch.before = sum(h.confirmed.values())
                self._phase = "chain"
                return ReadChain(tuple(self._batch.origins.values()))
            elif phase == "push":
                assert self._batch is not None
                return Push(tuple(self._batch.records), self._batch.endorsements)
            elif phase == "settled":
                assert self._batch is not None
                after = sum(h.confirmed.values())
                self.drained.append((now, after))
                self._end_round(after - self._batch.before)
                return None
            else:
                raise AssertionError(f"outbox in phase {phase!r} with no step out")

    def _next_read(self, h: Holdings) -> ReadRecords | None:
        """The next device's records to read into the batch, or None when it is full."""
        batch = self._batch
        assert batch is not None
        while batch.next < len(batch.devs):
            room = batch.size - len(batch.records)
            if room <= 0 or batch.nbytes >= MAX_BATCH_BYTES:
                return None
            dev = batch.devs[batch.next]
            start = self.cursor.get(dev, 0)
            limit = h.limits.get(dev, 0)  # read again: a fork or revocation may lower it
            if limit > start:
                return ReadRecords(dev, h.publics[dev], start, min(room, limit - start))
            batch.next += 1
        return None

    def candidates(self, h: Holdings, now: float) -> list[int]:
        """Devices with something to forward, not parked after a refusal."""
        return candidates(h.limits, h.confirmed, self.cursor, self.parked, now)

    def _ages(self, h: Holdings, devs: list[int]) -> ReadAges | None:
        """Where to look for the age of the backlog (DESIGN §2.7): the first record upstream
        does not hold, of the first devices with a backlog."""
        keys = tuple(
            (dev, max(self.cursor.get(dev, 0), h.confirmed.get(dev, 0)) + 1)
            for dev in devs[:AGE_PROBES]
        )
        if not keys:
            self.oldest_received = None
            return None
        return ReadAges(keys)

    def _end_round(self, moved: int) -> None:
        self._drop_round()
        if self._warned:
            self._effects.append(Recovered())
            self._warned = False
        self.state = UP
        self.backoff.succeeded()
        if not moved:
            self._rest = True

    def _drop_round(self) -> None:
        self._phase = None
        self._out = None
        self._batch = None
        self._answer = None
        self._chunks = []
        self._fork_queue = []

    def _fail(
        self,
        message: str,
        now: float,
        *,
        reset: bool = False,
        retry_after: float | None = None,
        too_big: bool = False,
    ) -> None:
        """A failure keeps the connection and the cursors: a push whose answer was lost is
        simply sent again (a no-op upstream, answered with receipts), so recovery costs one
        call. An answer that does not check out (``reset``) starts over from hello, which
        names the identity problem if there is one."""
        self._drop_round()
        if reset:
            self._connected = False
            self.cursor.clear()
            self._endorsed.clear()
        if too_big:
            self.sizer.failed()
        delay = self.backoff.failed(now, self.rng, retry_after)
        self.state = DOWN
        self.last_error = message
        self._effects.append(Failed(message, delay, not self._warned))
        self._warned = True
        self._ages_due = True  # keep the backlog's age true while upstream is away

    def _take(self, kind: type[Any]) -> Any:
        step = self._out
        assert isinstance(step, kind), f"answered {kind.__name__} while {step!r} was out"
        self._out = None
        return step

    # -- receipts ------------------------------------------------------------------------------

    def _receipts(self, raws: Any, h: Holdings, known: dict[tuple[bytes, int], bytes]) -> _Answer:
        """Receipts signed by the pinned upstream key, for devices known here, in order; up to
        the first one that does not check out."""
        assert self.pinned is not None
        out: list[tuple[int, receipt.Receipt]] = []
        for raw in raws if isinstance(raws, list) else [None]:
            try:
                if type(raw) is not bytes:
                    raise CodecError("a receipts list holds receipt bytes")
                rc = receipt.decode(raw)
                rc.check(self.pinned)
            except ProtocolError as exc:
                return _Answer(out, str(exc), known)
            dev = h.devs.get(rc.origin)
            if dev is not None and rc.seq > 0:
                out.append((dev, rc))
        return _Answer(out, None, known)

    def _settle_or_read(self, answer: _Answer, now: float) -> None:
        keys = {(rc.origin, rc.seq) for _dev, rc in answer.receipts}
        keys |= {(origin, held) for origin, held, _promised in answer.lost.values() if held}
        needed = tuple(sorted(k for k in keys if k not in answer.known))
        if needed:
            self._answer = answer
            self._out = ReadHeld(needed)
        else:
            self._settle(answer, {}, now)

    def _settle(
        self, answer: _Answer, held: Mapping[tuple[bytes, int], bytes | None], now: float
    ) -> None:
        """What an answer means, now that this hub's own records are at hand."""

        def ours(origin: bytes, seq: int) -> bytes | None:
            key = (origin, seq)
            return answer.known[key] if key in answer.known else held.get(key)

        for dev, (origin, held_seq, promised) in answer.lost.items():
            # A receipt is a promise: a broken one must not leave a silent hole.
            raw = ours(origin, held_seq) if held_seq else None
            self._effects += [
                Lost(dev, held_seq, promised),
                Reject(
                    dev, held_seq + 1, "upstream_lost",
                    f"upstream signed a receipt for seq {promised} but now holds only "
                    f"seq {held_seq}; resending",
                ),
                Unconfirm(dev, held_seq, sha256(raw).digest() if raw else record.GENESIS),
            ]  # fmt: skip
            self.cursor[dev] = held_seq
        ahead: dict[int, tuple[int, bytes]] = {}
        for dev, rc in answer.receipts:
            raw = ours(rc.origin, rc.seq)
            if raw is None:
                ahead[dev] = (rc.seq, rc.raw)  # another hub forwarded more of this log
            elif sha256(raw).digest() != rc.hash:
                self._effects.append(Diverged(dev, rc.seq))  # a fork upstream: not confirmed
            else:
                self._confirm(dev, rc.seq, rc.hash, rc.raw)
        if answer.bad is not None:
            self._fail(answer.bad, now, reset=True)
            return
        if self._phase in ("audit", "heads"):
            self._chunks.pop(0)
            return
        batch = self._batch
        assert batch is not None and self._phase == "push"
        refused = self._refused(answer.items, batch, now)
        # Upstream holds more of a log than this hub (a laptop enrolled at two hubs): confirm
        # what was sent when upstream refused none of it.
        up = {dev: seq for dev, (seq, _raw) in ahead.items()}
        for dev, last in confirmed_by_duplicates(up, batch.sent_to, refused).items():
            raw = batch.held[(batch.origins[dev], last)]
            self._confirm(dev, last, sha256(raw).digest(), ahead[dev][1])
        for dev, seq in batch.sent_to.items():
            if self.cursor.get(dev, 0) < seq and self.parked.get(dev, 0.0) <= now:
                self.cursor.pop(dev, None)  # no receipt that far and no refusal: ask again
        self._phase = "settled"

    def _refused(self, items: list[Any], batch: _Batch, now: float) -> list[int]:
        """Park each device on its lowest refused seq; its later records wait behind it.
        Returns the devices refused."""
        by_name: dict[str, int] = {}
        for dev, public in batch.origins.items() if items else ():
            by_name[identity.fingerprint(public)] = by_name[public.hex()] = dev

        def device_of(origin: str) -> int | None:
            dev = by_name.get(origin.strip().upper())
            return dev if dev is not None else by_name.get(origin.strip().lower())

        first = causes(items, batch.sent_to, device_of)
        for dev, item in first.items():
            code, reason = str(item.get("code")), str(item.get("reason"))
            self._effects += [
                Refused(dev, item["seq"], code, reason, self.park_s),
                Reject(dev, item["seq"], code, reason),
            ]
            self.parked[dev] = now + self.park_s
        return list(first)

    def _confirm(self, dev: int, seq: int, hash_: bytes, raw: bytes) -> None:
        self._effects.append(Confirm(dev, seq, hash_, raw))
        self.cursor[dev] = max(self.cursor.get(dev, 0), seq)


def _chunked(devs: list[int]) -> list[list[int]]:
    return [devs[i : i + HEADS_PER_CALL] for i in range(0, len(devs), HEADS_PER_CALL)]
