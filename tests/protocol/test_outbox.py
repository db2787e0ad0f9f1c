"""The upstream outbox: what a hub sends upstream, and what each answer means.

``SCENARIOS`` is the table of behaviours: each scenario sets up a room hub and a fake root
(``tests.hub.fakes.FakeRoot``), lets the hub forward, and checks what upstream was asked and what
the hub concluded. The scenarios talk to a ``Rig``, so the same table runs against every way the
forwarding is built.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import pytest

from hub.protocol import enroll, outbox, record
from hub.protocol.identity import Identity
from hub.protocol.outbox import HEARTBEAT_S, PENDING_RECHECK_S, STUCK_RETRY_S
from tests.helpers import chain, forms
from tests.hub.fakes import BUSY, DROP, FakeRoot, Fault, TooBig


class Rig(Protocol):
    """A room hub that forwards to ``root``, as the scenarios see it. Times in a scenario are
    the protocol's own seconds; ``s(x)`` is what they are on the rig's clock."""

    root: FakeRoot

    def s(self, seconds: float) -> float: ...
    async def device(self, name: str, n: int = 0, *, approved: bool = True) -> bytes: ...
    async def add(self, name: str, n: int) -> None: ...
    def sign(self, name: str, n: int, *, variant: int = 0) -> list[bytes]: ...
    async def approve(self, name: str) -> None: ...
    async def fork(self, name: str, seq: int) -> None: ...
    async def pin(self, public: bytes) -> None: ...
    async def start(self) -> None: ...
    async def until(self, cond: Callable[[], bool], what: str) -> None: ...
    async def wait(self, seconds: float) -> None: ...
    @property
    def hub_public(self) -> bytes: ...
    def confirmed(self, name: str) -> int: ...
    def rejection(self, name: str) -> tuple[int | None, str] | None: ...
    def rejections_log(self) -> list[tuple[str, int | None, str]]: ...
    def pinned(self) -> bytes | None: ...
    def state(self) -> str: ...
    def last_error(self) -> str | None: ...
    def enrollment(self) -> str | None: ...


# -- the scenarios ---------------------------------------------------------------------------


async def first_contact_pins_the_key(rig: Rig) -> None:
    a = await rig.device("A", 5)
    assert rig.pinned() is None
    await rig.start()
    await rig.until(lambda: rig.confirmed("A") == 5, "A confirmed")
    assert rig.pinned() == rig.root.ident.public
    assert [c.path for c in rig.root.calls[:4]] == ["hello", "enroll", "heads", "push"]
    (push,) = rig.root.pushes()
    assert push.seqs(a) == [1, 2, 3, 4, 5]
    assert len(push.endorsements) == 1  # the hub's endorsement of A
    await rig.add("A", 2)
    await rig.until(lambda: rig.confirmed("A") == 7, "A confirmed again")
    first, last = rig.root.pushes()
    assert last.seqs(a) == [6, 7]
    between = rig.root.calls[rig.root.calls.index(first) : rig.root.calls.index(last)]
    reconnected = any(c.path == "hello" for c in between)  # a heartbeat came in between
    assert last.endorsements == (first.endorsements if reconnected else [])  # once a connection
    assert rig.state() == "up" and rig.rejection("A") is None


async def a_different_key_is_refused(rig: Rig) -> None:
    await rig.device("A", 3)
    stranger = Identity.generate().public
    await rig.pin(stranger)
    await rig.start()
    await rig.until(lambda: "REFUSED" in (rig.last_error() or ""), "the refusal")
    assert "check --upstream" in (rig.last_error() or "")
    await rig.wait(5)
    assert {c.path for c in rig.root.calls} == {"hello"}  # nothing sent there
    assert rig.pinned() == stranger
    assert rig.state() in ("down", "backoff") and rig.confirmed("A") == 0


async def a_refusal_parks_the_device_and_its_later_records_wait(rig: Rig) -> None:
    a = await rig.device("A", 5)
    await rig.device("B", 3)
    rig.root.refuse(a, 3)
    await rig.start()
    await rig.until(
        lambda: rig.confirmed("B") == 3 and rig.rejection("A") == (3, "device_revoked"),
        "B confirmed and A refused at 3",
    )
    assert rig.confirmed("A") == 2  # what upstream took before the refused one
    refused_at = next(p.at for p in rig.root.pushes() if 3 in p.seqs(a))
    n = len(rig.root.pushes())
    await rig.add("A", 2)
    await rig.add("B", 2)
    await rig.until(lambda: rig.confirmed("B") == 5, "B's new records confirmed")
    await rig.wait(STUCK_RETRY_S / 4)
    assert not any(p.seqs(a) for p in rig.root.pushes()[n:])  # A waits behind seq 3
    assert rig.rejection("A") == (3, "device_revoked")
    del rig.root.refusals[a]
    await rig.until(lambda: rig.confirmed("A") == 7, "A retried after its parking")
    retry = next(p for p in rig.root.pushes()[n:] if p.seqs(a))
    assert retry.seqs(a) == [3, 4, 5, 6, 7]
    assert retry.at - refused_at >= rig.s(STUCK_RETRY_S)
    assert rig.rejection("A") is None  # cleared once upstream confirmed past it


async def a_lost_answer_is_sent_again_and_confirmed_by_the_duplicate(rig: Rig) -> None:
    a = await rig.device("A", 5)
    rig.root.fail_next(DROP, path="push")
    await rig.start()
    await rig.until(lambda: rig.confirmed("A") == 5, "A confirmed")
    first, second = rig.root.pushes()
    assert first.outcome == DROP
    assert first.seqs(a) == second.seqs(a) == [1, 2, 3, 4, 5]
    i = rig.root.calls.index(first)
    assert rig.root.calls[i + 1] is second  # cursors kept: no hello, no heads in between
    assert rig.root.head(a) == 5 and len(rig.root.logs[a]) == 5


async def an_upstream_that_lost_entries_gets_them_again(rig: Rig) -> None:
    a = await rig.device("A", 10)
    await rig.start()
    await rig.until(lambda: rig.confirmed("A") == 10, "A confirmed")
    rig.root.lose(a, 4)  # restored from a backup
    await rig.until(lambda: ("A", 5, "upstream_lost") in rig.rejections_log(), "the audit")
    await rig.until(lambda: rig.root.head(a) == 10 and rig.confirmed("A") == 10, "resent")
    resend = [p for p in rig.root.pushes() if p.seqs(a)][-1]
    assert resend.seqs(a) == [5, 6, 7, 8, 9, 10]
    assert rig.rejection("A") is None  # cleared once confirmed again


async def a_receipt_beyond_this_hub_confirms_by_duplicates(rig: Rig) -> None:
    a = await rig.device("A", 5)
    rig.root.logs[a] = rig.sign("A", 10)  # another hub of the room forwarded the whole log
    await rig.start()
    await rig.until(lambda: rig.confirmed("A") == 5, "A confirmed")
    await rig.wait(HEARTBEAT_S * 2)
    sent = [p.seqs(a) for p in rig.root.pushes() if p.seqs(a)]
    assert sent == [[1, 2, 3, 4, 5]]  # once, not again and again
    assert len(rig.root.logs[a]) == 10


async def a_busy_upstream_is_left_alone_for_its_retry_after(rig: Rig) -> None:
    await rig.device("A", 3)
    rig.root.fail_next(BUSY, retry_after=rig.s(20))
    await rig.start()
    await rig.until(lambda: rig.state() == "backoff", "backing off")
    await rig.until(lambda: rig.confirmed("A") == 3, "A confirmed")
    busy, after = rig.root.calls[:2]
    assert busy.outcome == BUSY and after.at - busy.at >= rig.s(20)


async def too_big_halves_the_batch(rig: Rig) -> None:
    a = await rig.device("A", 300)
    rig.root.max_records = 120
    await rig.start()
    await rig.until(lambda: rig.confirmed("A") == 300, "A confirmed")
    pushes = [(len(c.seqs(a)), c.outcome) for c in rig.root.calls if c.path == "push"]
    assert pushes[:2] == [(200, "too_big"), (100, "ok")]
    assert all(n <= 120 for n, outcome in pushes if outcome == "ok")


async def an_idle_hub_still_checks_on_its_upstream(rig: Rig) -> None:
    await rig.device("A", 2)
    await rig.start()
    await rig.until(lambda: rig.confirmed("A") == 2, "A confirmed")
    n = rig.root.count("hello")
    await rig.until(lambda: rig.root.count("hello") >= n + 2, "two heartbeats")
    hellos = [c.at for c in rig.root.calls if c.path == "hello"]
    assert all(b - a >= rig.s(HEARTBEAT_S) for a, b in itertools.pairwise(hellos))
    rig.root.is_down = True
    await rig.until(lambda: rig.state() in ("down", "backoff"), "the outage noticed")
    assert "cannot reach upstream" in (rig.last_error() or "")


async def a_pending_hub_asks_upstream_again_every_10_s(rig: Rig) -> None:
    rig.root.approve_hubs = False
    a = await rig.device("A", 2)
    await rig.start()
    await rig.until(lambda: rig.root.count("enroll") >= 3, "three enrollments")
    assert rig.enrollment() == "pending"
    assert rig.root.head(a) == 2  # forwarded anyway, held there
    paths = [c.path for c in rig.root.calls]
    # a re-check is an enrollment on its own (a heartbeat says hello first)
    assert any(p == "enroll" and q != "hello" for q, p in itertools.pairwise(paths))
    enrolls = [c.at for c in rig.root.calls if c.path == "enroll"]
    assert all(b - a >= rig.s(PENDING_RECHECK_S) for a, b in itertools.pairwise(enrolls))
    rig.root.approve(rig.hub_public)
    await rig.until(lambda: rig.enrollment() == "approved", "approved upstream")


async def fork_evidence_is_sent_upstream_once(rig: Rig) -> None:
    a = await rig.device("A", 5)
    await rig.start()
    await rig.until(lambda: rig.confirmed("A") == 5, "A confirmed")
    await rig.fork("A", 3)
    await rig.until(lambda: rig.root.forks == [(a, 3)], "the fork recorded upstream")
    await rig.wait(HEARTBEAT_S * 2)
    assert [p.seqs(a) for p in rig.root.pushes() if p.seqs(a) == [3, 3]] == [[3, 3]]
    assert rig.root.forks == [(a, 3)]


async def a_receipt_that_does_not_check_out_starts_over_from_hello(rig: Rig) -> None:
    a = await rig.device("A", 4)
    rig.root.stranger_receipts = 1
    await rig.start()
    await rig.until(lambda: rig.confirmed("A") == 4, "A confirmed")
    paths = [c.path for c in rig.root.calls]
    assert paths[:7] == ["hello", "enroll", "heads", "push", "hello", "enroll", "heads"]
    assert len(rig.root.logs[a]) == 4


async def another_entry_upstream_is_a_fork_there_not_a_confirmation(rig: Rig) -> None:
    a = await rig.device("A", 3)
    rig.root.logs[a] = rig.sign("A", 2, variant=1)  # a copy of A's folder was used elsewhere
    await rig.start()
    await rig.until(lambda: rig.rejection("A") is not None, "the refusal")
    assert rig.rejection("A") == (1, "fork")
    assert rig.confirmed("A") == 0


async def a_push_answered_without_receipts_asks_the_heads_again(rig: Rig) -> None:
    a = await rig.device("A", 4)
    rig.root.receiptless_pushes = 1
    await rig.start()
    await rig.until(lambda: rig.confirmed("A") == 4, "A confirmed")
    paths = [c.path for c in rig.root.calls]
    assert paths[:5] == ["hello", "enroll", "heads", "push", "heads"]  # not a blind resend
    assert [p.seqs(a) for p in rig.root.pushes()] == [[1, 2, 3, 4]]


async def a_device_held_here_is_not_forwarded_until_approved(rig: Rig) -> None:
    a = await rig.device("A", 3)
    b = await rig.device("B", 2, approved=False)
    await rig.start()
    await rig.until(lambda: rig.confirmed("A") == 3, "A confirmed")
    await rig.wait(5)
    assert rig.root.head(b) == 0 and rig.root.head(a) == 3
    await rig.approve("B")
    await rig.until(lambda: rig.confirmed("B") == 2, "B confirmed")


SCENARIOS: list[Callable[[Rig], Awaitable[None]]] = [
    first_contact_pins_the_key,
    a_different_key_is_refused,
    a_refusal_parks_the_device_and_its_later_records_wait,
    a_lost_answer_is_sent_again_and_confirmed_by_the_duplicate,
    an_upstream_that_lost_entries_gets_them_again,
    a_receipt_beyond_this_hub_confirms_by_duplicates,
    a_busy_upstream_is_left_alone_for_its_retry_after,
    too_big_halves_the_batch,
    an_idle_hub_still_checks_on_its_upstream,
    a_pending_hub_asks_upstream_again_every_10_s,
    fork_evidence_is_sent_upstream_once,
    a_receipt_that_does_not_check_out_starts_over_from_hello,
    another_entry_upstream_is_a_fork_there_not_a_confirmation,
    a_push_answered_without_receipts_asks_the_heads_again,
    a_device_held_here_is_not_forwarded_until_approved,
]


# -- the outbox alone: an in-memory hub store, simulated time --------------------------------


class MemStore:
    """What a hub store holds, as the outbox sees it, with the store's rules for confirmations
    and refusals (only forward; a confirmation past a refusal clears it)."""

    def __init__(self, hub: Identity):
        self.hub = hub
        self.ids: dict[str, int] = {}
        self.publics: dict[int, bytes] = {}
        self.approved: dict[int, bytes | None] = {}  # dev -> this hub's endorsement, if any
        self.forked: set[int] = set()
        self.logs: dict[int, list[bytes]] = {}
        self.received: dict[int, list[int]] = {}
        self.confirmed: dict[int, int] = {}
        self.rejections: dict[int, tuple[int | None, str, str]] = {}
        self.rejections_log: list[tuple[int, int | None, str]] = []
        self.evidence: list[tuple[int, int, bytes, bytes | None]] = []
        self.pinned: bytes | None = None

    def holdings(self) -> outbox.Holdings:
        limits = {
            dev: 0 if dev in self.forked or self.approved.get(dev) is None else len(log)
            for dev, log in self.logs.items()
        }
        return outbox.Holdings(
            limits=limits,
            confirmed=dict(self.confirmed),
            rejected=set(self.rejections),
            publics=dict(self.publics),
            devs={p: d for d, p in self.publics.items()},
            forks=len(self.evidence),
        )

    def raw(self, origin: bytes, seq: int) -> bytes | None:
        log = self.logs[{p: d for d, p in self.publics.items()}[origin]]
        return log[seq - 1] if 0 < seq <= len(log) else None

    def apply(self, effect: outbox.Effect) -> None:
        match effect:
            case outbox.Pin(public):
                self.pinned = public
            case outbox.Confirm(dev, seq):
                if self.confirmed.get(dev, 0) >= seq:
                    return
                self.confirmed[dev] = seq
                rej = self.rejections.get(dev)
                if rej is not None and rej[0] is not None and rej[0] <= seq:
                    del self.rejections[dev]
            case outbox.Unconfirm(dev, seq):
                if self.confirmed.get(dev, 0) > seq:
                    self.confirmed[dev] = seq
            case outbox.Reject(dev, seq, code, reason):
                if self.rejections.get(dev) != (seq, code, reason):
                    self.rejections[dev] = (seq, code, reason)
                    self.rejections_log.append((dev, seq, code))


class OutboxRig:
    """``Outbox`` driven step by step against ``root``, with a simulated clock: the real
    timings (minutes of parking, heartbeats) take no time at all."""

    SIM_LIMIT = 3600.0  # simulated seconds an ``until`` may take
    CALL_S = 0.001  # each call upstream takes this long

    def __init__(self) -> None:
        self.now = 1000.0
        self.root = FakeRoot(lambda: self.now)
        self.ident = Identity.generate()
        self.mem = MemStore(self.ident)
        self.box: outbox.Outbox | None = None
        self.idents: dict[str, Identity] = {}
        self.steps = 0

    def s(self, seconds: float) -> float:
        return seconds

    @property
    def hub_public(self) -> bytes:
        return self.ident.public

    @property
    def _box(self) -> outbox.Outbox:
        assert self.box is not None
        return self.box

    def sign(self, name: str, n: int, *, variant: int = 0) -> list[bytes]:
        seed = 1 + variant  # the fork below uses seed 3
        return [r.raw for r in chain(self.idents[name], forms(n, seed=seed))]

    async def device(self, name: str, n: int = 0, *, approved: bool = True) -> bytes:
        ident = self.idents[name] = Identity.generate()
        dev = self.mem.ids[name] = len(self.mem.ids) + 1
        self.mem.publics[dev], self.mem.logs[dev], self.mem.received[dev] = ident.public, [], []
        self.mem.approved[dev] = None
        if approved:
            await self.approve(name)
        await self.add(name, n)
        return ident.public

    async def add(self, name: str, n: int) -> None:
        log = self.mem.logs[self.mem.ids[name]]
        log += self.sign(name, len(log) + n)[len(log) :]
        self.mem.received[self.mem.ids[name]] += [int(self.now)] * n

    async def approve(self, name: str) -> None:
        public = self.idents[name].public
        self.mem.approved[self.mem.ids[name]] = enroll.endorse(
            self.ident, public, name, "laptop", 1
        )

    async def fork(self, name: str, seq: int) -> None:
        dev = self.mem.ids[name]
        prev = record.decode(self.mem.logs[dev][seq - 2]).hash if seq > 1 else record.GENESIS
        other = chain(self.idents[name], forms(1, seed=3), start=seq, prev=prev)[0]
        self.mem.evidence.append((dev, seq, other.raw, self.mem.logs[dev][seq - 1]))
        self.mem.forked.add(dev)

    async def pin(self, public: bytes) -> None:
        self.mem.pinned = public

    async def start(self, *, kbps: int = 0) -> None:
        self.box = outbox.Outbox("http://fake-root", self.mem.pinned, random.Random(7), kbps=kbps)

    async def until(self, cond: Callable[[], bool], what: str) -> None:
        deadline = self.now + self.SIM_LIMIT
        while not cond():
            if self.now > deadline:
                raise AssertionError(f"not reached in {self.SIM_LIMIT:g} s: {what}")
            self.step()

    async def wait(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:
            self.step()

    def step(self) -> None:
        """One step of the outbox, done here, its effects applied."""
        box, mem, root = self._box, self.mem, self.root
        self.steps += 1
        assert self.steps < 100_000, "the outbox is going round in circles"
        h = mem.holdings()
        step = box.next_step(h, self.now)
        try:
            match step:
                case outbox.Wait(until):
                    assert until > self.now, f"a wait for the past: {step}"
                    self.now = until
                case outbox.Hello():
                    nonce = bytes(16)
                    reply = self._call(lambda: root.hello(nonce))
                    enroll.check_proof(reply["public"], nonce, reply["proof"])
                    box.hello_answered(reply["public"], self.now)
                case outbox.Enroll(upstream):
                    req = enroll.make_request(self.ident, upstream, "room", "hub", 1)
                    box.enroll_answered(self._call(lambda: root.enroll(req)), self.now)
                case outbox.AskHeads(origins):
                    reply = self._call(lambda: root.heads(origins))
                    box.heads_answered(reply, mem.holdings(), self.now)
                case outbox.PushFork(records=records):
                    box.fork_answered(self._call(lambda: root.push(records, [])), self.now)
                case outbox.Push(records, endorsements):
                    t0 = self.now
                    reply = self._call(lambda: root.push(records, endorsements))
                    box.push_answered(reply, mem.holdings(), t0, self.now)
                case outbox.ReadForks():
                    box.forks_read(list(mem.evidence))
                case outbox.ReadRecords(dev, _origin, after, limit):
                    box.records_read(mem.logs[dev][after : after + limit])
                case outbox.ReadChain(origins):
                    ids = {p: d for d, p in mem.publics.items()}
                    box.chain_read([e for o in origins if (e := mem.approved.get(ids[o]))])
                case outbox.ReadHeld(keys):
                    box.held_read({k: mem.raw(*k) for k in keys}, self.now)
                case outbox.ReadAges(keys):
                    box.ages_read([mem.received[d][s - 1] for d, s in keys])
        except Fault as f:
            message = "busy" if f.kind == BUSY else "cannot reach upstream (test)"
            box.call_failed(message, self.now, retry_after=f.retry_after)
        except TooBig:
            box.call_failed("too big", self.now, too_big=True)
        for effect in box.effects():
            mem.apply(effect)

    def _call(self, fn: Callable[[], Any]) -> Any:
        self.now += self.CALL_S
        return fn()

    def confirmed(self, name: str) -> int:
        return self.mem.confirmed.get(self.mem.ids[name], 0)

    def rejection(self, name: str) -> tuple[int | None, str] | None:
        r = self.mem.rejections.get(self.mem.ids[name])
        return None if r is None else (r[0], r[1])

    def rejections_log(self) -> list[tuple[str, int | None, str]]:
        names = {d: n for n, d in self.mem.ids.items()}
        return [(names[dev], seq, code) for dev, seq, code in self.mem.rejections_log]

    def pinned(self) -> bytes | None:
        return self.mem.pinned

    def state(self) -> str:
        box = self._box
        return "backoff" if box.backoff.waiting(self.now) else box.state

    def last_error(self) -> str | None:
        return self._box.last_error

    def enrollment(self) -> str | None:
        return self._box.enrollment


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__)
async def test_scenario(scenario: Callable[[Rig], Awaitable[None]]) -> None:
    await scenario(OutboxRig())


# -- what only a simulated clock can show -----------------------------------------------------


async def test_a_confirmation_past_a_refusal_ends_the_parking_early() -> None:
    rig = OutboxRig()
    a = await rig.device("A", 5)
    rig.root.refuse(a, 3)
    await rig.start()
    await rig.until(lambda: rig.rejection("A") == (3, "device_revoked"), "the refusal")
    refused_at = rig.now
    rig.root.logs[a] = rig.sign("A", 5)  # the rest reached upstream another way
    del rig.root.refusals[a]
    await rig.until(lambda: rig.rejection("A") is None, "cleared by the heartbeat's audit")
    await rig.add("A", 2)
    await rig.until(lambda: rig.confirmed("A") == 7, "A's new records")
    assert rig.now - refused_at < STUCK_RETRY_S  # not held back until the parking ends


async def test_a_pending_hub_asks_more_often_than_the_heartbeat() -> None:
    rig = OutboxRig()
    rig.root.approve_hubs = False
    await rig.device("A", 1)
    await rig.start()
    await rig.wait(60)
    enrolls = [c.at for c in rig.root.calls if c.path == "enroll"]
    gaps = [b - a for a, b in itertools.pairwise(enrolls)]
    assert len(gaps) >= 4 and all(PENDING_RECHECK_S <= g < HEARTBEAT_S for g in gaps)


async def test_the_bandwidth_cap_spaces_pushes_out() -> None:
    rig = OutboxRig()
    a = await rig.device("A", 600)
    await rig.start(kbps=50)
    await rig.until(lambda: rig.confirmed("A") == 600, "A confirmed")
    pushes = rig.root.pushes()
    assert len(pushes) >= 3 and sum(len(p.seqs(a)) for p in pushes) == 600
    for p, nxt in itertools.pairwise(pushes):
        assert nxt.at - p.at >= p.nbytes / (50 * 1024)  # a push of N bytes takes N / cap


def _holdings(**kw: Any) -> outbox.Holdings:
    base: dict[str, Any] = {"limits": {}, "confirmed": {}, "rejected": set(), "publics": {},
                            "devs": {}, "forks": 0}  # fmt: skip
    return outbox.Holdings(**(base | kw))


def test_an_answer_of_the_wrong_shape_starts_over_from_hello() -> None:
    box = outbox.Outbox("http://up", None, random.Random(1))
    h = _holdings()
    key = Identity.generate().public
    assert box.next_step(h, 0.0) == outbox.Hello()
    box.hello_answered(key, 0.1)
    assert box.next_step(h, 0.1) == outbox.Enroll(key)
    box.enroll_answered(["not", "an", "answer"], 0.2)
    pin, failed = box.effects()
    assert pin == outbox.Pin(key) and isinstance(failed, outbox.Failed) and failed.first
    assert box.state == outbox.DOWN and "enrollment" in (box.last_error or "")
    wait = box.next_step(h, 0.2)
    assert isinstance(wait, outbox.Wait) and wait.until == box.backoff.until
    assert box.next_step(h, wait.until) == outbox.Hello()


def test_a_broken_read_backs_off_and_asks_the_heads_again() -> None:
    box = outbox.Outbox("http://up", None, random.Random(1))
    key, pk = Identity.generate().public, Identity.generate().public
    h = _holdings(limits={1: 3}, publics={1: pk}, devs={pk: 1})
    box.next_step(h, 0.0)
    box.hello_answered(key, 0.0)
    box.next_step(h, 0.0)
    box.enroll_answered({"state": "approved", "code": "123 456"}, 0.0)
    assert box.next_step(h, 0.0) == outbox.AskHeads((pk,))
    box.heads_answered({"heads": [[pk, 0, record.GENESIS]], "receipts": []}, h, 0.0)
    assert box.next_step(h, 0.0) == outbox.ReadAges(((1, 1),))
    box.ages_read([1_700_000_000])
    assert box.next_step(h, 0.0) == outbox.ReadRecords(1, pk, 0, 3)
    box.crashed(0.1)  # the store failed under the read
    assert [type(e) for e in box.effects()] == [outbox.Pin]  # the driver logs the crash
    wait = box.next_step(h, 0.1)
    assert isinstance(wait, outbox.Wait) and box.backoff.failures == 1
    assert box.next_step(h, wait.until) == outbox.AskHeads((pk,))  # cursors forgotten


def test_heads_replies_are_read_defensively() -> None:
    pk = bytes(32)
    reply = {"heads": [[pk, 4, b"h"], [pk], ["x", 1, b"h"], [bytes(31) + b"\1", 2, b"h"], "x"]}
    assert outbox.parse_heads(reply, {pk: 7}) == {7: 4}
    assert outbox.parse_heads({"heads": "nonsense"}, {pk: 7}) == {}


# -- the decision helpers --------------------------------------------------------------------


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
