"""The upstream outbox: what a hub sends upstream, and what each answer means.

``SCENARIOS`` is the table of behaviours: each scenario sets up a room hub and a fake root
(``tests.hub.fakes.FakeRoot``), lets the hub forward, and checks what upstream was asked and what
the hub concluded. The scenarios talk to a ``Rig``, so the same table runs against every way the
forwarding is built.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import pytest

from hub.config import HubConfig
from hub.node import Hub, init_data_dir
from hub.protocol import clock, enroll, outbox, record
from hub.protocol.identity import Identity
from tests.helpers import chain, forms
from tests.hub.fakes import BUSY, DROP, FakeRoot, serve

STUCK_RETRY_S = 120.0
PENDING_RECHECK_S = 10.0
HEARTBEAT_S = 15.0


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
    a_device_held_here_is_not_forwarded_until_approved,
]


# -- a room hub with a real store, forwarding over loopback ------------------------------------


class HubRig:
    """A real hub store (offline ``Hub``), forwarded by ``hub.forwarder`` to ``root`` served on
    127.0.0.1. Its timers are shortened by ``scale`` so waits of minutes take seconds."""

    scale = 0.02

    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch):
        self.tmp = tmp
        self.monkeypatch = monkeypatch
        self.root = FakeRoot(time.monotonic)
        self.idents: dict[str, Identity] = {}
        self.held: dict[str, int] = {}
        self.hub: Hub | None = None
        self.fwd: Any = None
        self.url = ""

    def s(self, seconds: float) -> float:
        return seconds * self.scale

    @property
    def _hub(self) -> Hub:
        assert self.hub is not None
        return self.hub

    @property
    def hub_public(self) -> bytes:
        return self._hub.ident.public

    async def open(self, url: str) -> None:
        self.url = url
        init_data_dir(self.tmp / "room", "room")
        self.hub = Hub(HubConfig(data_dir=self.tmp / "room", mdns=False))
        await self.hub.open_offline()

    async def close(self) -> None:
        if self.fwd is not None:
            await self.fwd.stop()
        await self._hub.stop()

    def sign(self, name: str, n: int, *, variant: int = 0) -> list[bytes]:
        seed = 10 * (sorted(self.idents).index(name) + 1) + variant
        return [r.raw for r in chain(self.idents[name], forms(n, seed=seed))]

    async def device(self, name: str, n: int = 0, *, approved: bool = True) -> bytes:
        ident = self.idents[name] = Identity.generate()
        self.held[name] = 0
        req = enroll.make_request(ident, self.hub_public, name, "laptop", clock.now_s())
        d, _code = await self._hub.enroll(req)
        if approved:
            await self._hub.approve(d)
        await self.add(name, n)
        return ident.public

    async def add(self, name: str, n: int) -> None:
        raws = self.sign(name, self.held[name] + n)[self.held[name] :]
        if raws:
            await self._hub.push(raws)
        self.held[name] += n

    async def approve(self, name: str) -> None:
        await self._hub.approve(self._hub._store().devices[self.idents[name].public])

    async def fork(self, name: str, seq: int) -> None:
        prev = record.decode(self.sign(name, seq - 1)[-1]).hash if seq > 1 else record.GENESIS
        other = chain(self.idents[name], forms(1, seed=3), start=seq, prev=prev)[0]
        await self._hub.push([other.raw])

    async def pin(self, public: bytes) -> None:
        await self._hub._store().set_meta("upstream_public", public)

    async def start(self) -> None:
        from hub import forwarder

        for name in ("STUCK_RETRY_S", "PENDING_RECHECK_S", "IDLE_POLL"):
            self.monkeypatch.setattr(forwarder, name, self.s(getattr(forwarder, name)))
        self.fwd = forwarder.Forwarder(self._hub, self.url)
        self.fwd.heartbeat_s = self.s(forwarder.HEARTBEAT_S)
        await self.fwd.start()

    async def until(self, cond: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 60
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError(f"not reached: {what}")
            await asyncio.sleep(0.01)

    async def wait(self, seconds: float) -> None:
        await asyncio.sleep(self.s(seconds))

    def _dev(self, name: str) -> int:
        return self._hub._store().devices[self.idents[name].public].id

    def confirmed(self, name: str) -> int:
        c = self._hub._store().confirmed.get(self._dev(name))
        return 0 if c is None else c.seq

    def rejection(self, name: str) -> tuple[int | None, str] | None:
        r = self._hub._store().rejections.get(self._dev(name))
        return None if r is None else (r.seq, r.code)

    def rejections_log(self) -> list[tuple[str, int | None, str]]:
        names = {self._dev(n): n for n in self.idents}
        db = sqlite3.connect(f"file:{self.tmp / 'room' / 'hub.db'}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT dev, seq, code FROM upstream_rejections ORDER BY id")
            return [(names[dev], seq, code) for dev, seq, code in rows]
        finally:
            db.close()

    def pinned(self) -> bytes | None:
        if self.fwd is None:
            return None
        public: bytes | None = self.fwd.upstream_public
        return public

    def state(self) -> str:
        return str(self.fwd.status()["state"])

    def last_error(self) -> str | None:
        return self.fwd.last_error  # type: ignore[no-any-return]

    def enrollment(self) -> str | None:
        return self.fwd.enrollment.get("state")  # type: ignore[no-any-return]


@pytest.fixture
async def hub_rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[HubRig]:
    rig = HubRig(tmp_path, monkeypatch)
    async with serve(rig.root) as url:
        await rig.open(url)
        try:
            yield rig
        finally:
            await rig.close()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__)
async def test_scenario_through_a_hub(
    scenario: Callable[[Rig], Awaitable[None]], hub_rig: HubRig
) -> None:
    await scenario(hub_rig)


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
