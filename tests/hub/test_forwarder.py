"""Forwarding upstream: between in-process hubs on real loopback sockets and real SQLite, and
the table of scenarios of tests/protocol/test_outbox.py through the real forwarder and store
(against an in-memory fake root, and a few over a real socket)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from hub.config import HubConfig
from hub.forwarder import META_UPSTREAM_KEY, Forwarder
from hub.node import Hub, init_data_dir
from hub.protocol import clock, codec, enroll, receipt, record
from hub.protocol.identity import Identity
from hub.store import HubStore
from hub.upstream import HttpUpstream, Upstream
from tests.helpers import chain, forms
from tests.hub.fakes import FakeRoot, FakeUpstream, serve
from tests.protocol.test_outbox import (
    SCENARIOS,
    a_busy_upstream_is_left_alone_for_its_retry_after,
    a_lost_answer_is_sent_again_and_confirmed_by_the_duplicate,
    a_refusal_parks_the_device_and_its_later_records_wait,
    an_idle_hub_still_checks_on_its_upstream,
    too_big_halves_the_batch,
)


async def eventually(check: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Wait until ``check()`` holds (a bounded wait for background work, not a speed test)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached in time: {what}")
        await asyncio.sleep(0.01)


def make_hub(tmp: Path, name: str, **kw: object) -> Hub:
    init_data_dir(tmp / name, name)
    return Hub(HubConfig(data_dir=tmp / name, host="127.0.0.1", port=0, mdns=False, **kw))  # type: ignore[arg-type]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def push(http: aiohttp.ClientSession, hub: Hub, recs: list[bytes]) -> dict[str, object]:
    async with http.post(
        hub.url + "/v1/push",
        data=codec.pack({"records": recs}),
        headers={"Content-Type": "application/msgpack"},
    ) as r:
        assert r.status == 200
        reply: dict[str, object] = codec.unpack(await r.read(), canonical=False)
        return reply


async def enroll_laptop(http: aiohttp.ClientSession, hub: Hub, ident: Identity) -> None:
    raw = enroll.make_request(ident, hub.ident.public, "Laptop", "laptop", 1)
    async with http.post(
        hub.url + "/v1/enroll", data=raw, headers={"Content-Type": "application/msgpack"}
    ) as r:
        assert r.status == 200
    await hub.approve(hub.service.store.devices[ident.public])


async def approve_when_enrolled(parent: Hub, child: Hub) -> None:
    await eventually(lambda: child.ident.public in parent.service.store.devices)
    await parent.approve(parent.service.store.devices[child.ident.public])


async def test_room_to_root_with_endorsement_chain(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with make_hub(tmp_path, "root", root=True) as root:
        async with make_hub(tmp_path, "room", upstream=root.url) as room:
            laptop = Identity.generate()
            await enroll_laptop(http, room, laptop)
            recs = chain(laptop, forms(50))
            await push(http, room, [r.raw for r in recs])
            # Upstream holds them but the room hub is pending there: held, not counted.
            await eventually(lambda: root.status()["entries"]["held"] == 50)
            assert root.status()["entries"]["accepted"] == 0
            await approve_when_enrolled(root, room)
            await eventually(lambda: root.status()["entries"]["accepted"] == 50)
            await eventually(lambda: room.status()["upstream"]["backlog"] == 0)
            up = room.status()["upstream"]
            assert up["state"] == "up" and up["confirmed"] == 50 and up["rejected"] == 0
            # The laptop device at the root was approved through the room hub's endorsement.
            (lap,) = [d for d in root.status()["device_list"] if d["role"] == "laptop"]
            assert lap["state"] == "approved" and lap["id"] == laptop.node_id
            # The room relays upstream's signed receipt down to the laptop.
            async with http.get(f"{room.url}/v1/heads/{laptop.public.hex()}") as r:
                head = codec.unpack(await r.read(), canonical=False)
            rc = receipt.decode(head["confirmed"])
            rc.check(root.ident.public)
            assert rc.seq == 50 and rc.hash == recs[-1].hash
            totals = root.status()["totals"]["pemilu-2024"]["PPWP"]
            assert totals["tps_counted"] == 50
            assert sum(totals["votes"].values()) == sum(f["sah"] for f in forms(50))


async def test_pending_laptop_is_not_forwarded(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    async with make_hub(tmp_path, "root", root=True) as root:
        async with make_hub(tmp_path, "room", upstream=root.url) as room:
            await approve_when_enrolled(root, room)
            held, ok = Identity.generate(), Identity.generate()
            await enroll_laptop(http, room, ok)
            await push(http, room, [r.raw for r in chain(held, forms(5, seed=1))])
            await push(http, room, [r.raw for r in chain(ok, forms(7, seed=2))])
            await eventually(lambda: root.status()["entries"]["accepted"] == 7)
            await asyncio.sleep(0.3)
            assert root.status()["entries"]["total"] == 7
            await room.approve(room.service.store.devices[held.public])
            await eventually(lambda: root.status()["entries"]["accepted"] == 12)


async def test_forged_entry_in_hub_store_refused_by_root_rest_flows(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with make_hub(tmp_path, "root", root=True) as root:
        room = make_hub(tmp_path, "room", upstream=root.url)
        await room.start()
        try:
            await approve_when_enrolled(root, room)
            good = Identity.generate()
            await enroll_laptop(http, room, good)
            await push(http, room, [r.raw for r in chain(good, forms(10))])
            await eventually(lambda: root.status()["entries"]["accepted"] == 10)
        finally:
            await room.stop()
        # Slip a record from a key the hub never approved straight into its database, with a
        # device row marked approved but no endorsement.
        import sqlite3

        rogue = Identity.generate()
        rec = chain(rogue, forms(1, seed=9))[0]
        db = sqlite3.connect(tmp_path / "room" / "hub.db")
        with db:
            cur = db.execute(
                "INSERT INTO devices(public, node_id, name, role, state, first_seen, last_seen)"
                " VALUES (?, ?, 'rogue', 'laptop', 'approved', 0, 0)",
                (rogue.public, rogue.node_id),
            )
            db.execute(
                "INSERT INTO records(dev, seq, hash, raw, received_at, election, form, tps,"
                " flags, users_j, numbers, supersedes, scans, votes)"
                " VALUES (?, 1, ?, ?, 0, 'pemilu-2024', 'PPWP', '9901010001099', '', 0, x'00',"
                " NULL, '', '1:1')",
                (cur.lastrowid, rec.hash, rec.raw),
            )
        db.close()
        async with make_hub(tmp_path, "room", upstream=root.url) as room2:
            more = chain(good, forms(5, seed=3), start=11, prev=chain(good, forms(10))[-1].hash)
            await push(http, room2, [r.raw for r in more])
            await eventually(lambda: root.status()["entries"]["accepted"] == 15)
            await eventually(lambda: room2.status()["upstream"]["rejected"] == 1)
            (rej,) = room2.status()["upstream"]["rejections"]
            assert rej["device"] == rogue.node_id and rej["code"] == "not_endorsed"
            assert rogue.public not in root.service.store.devices


async def test_altered_bytes_in_hub_store_refused_by_root(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with make_hub(tmp_path, "root", root=True) as root:
        room = make_hub(tmp_path, "room", upstream=root.url)
        await room.start()
        laptop = Identity.generate()
        recs = chain(laptop, forms(4))
        try:
            await approve_when_enrolled(root, room)
            await enroll_laptop(http, room, laptop)
            # Stop forwarding before the records arrive, by pointing nowhere first.
        finally:
            await room.stop()
        other = Identity.generate()
        async with make_hub(tmp_path, "room", upstream=root.url) as room2:
            await enroll_laptop(http, room2, other)
            # Make the root unreachable for the moment: push while a fake upstream is down is
            # complicated; instead alter the bytes after they are stored, before forwarding.
            await room2.forwarder.stop()
            await push(http, room2, [r.raw for r in recs])
            await push(http, room2, [r.raw for r in chain(other, forms(3, seed=5))])
        import sqlite3

        db = sqlite3.connect(tmp_path / "room" / "hub.db")
        raw = bytearray(recs[1].raw)
        raw[-70] ^= 0x01  # a byte inside the body
        with db:  # someone with the disk can drop the guard; the root must still catch it
            db.execute("DROP TRIGGER records_no_update")
            db.execute(
                "UPDATE records SET raw = ? WHERE seq = 2 AND hash = ?", (bytes(raw), recs[1].hash)
            )
        db.close()
        async with make_hub(tmp_path, "room", upstream=root.url) as room3:
            await eventually(lambda: room3.status()["upstream"]["rejected"] >= 1)
            await eventually(lambda: root.status()["entries"]["accepted"] == 1 + 3)
            rej = room3.status()["upstream"]["rejections"][0]
            assert rej["device"] == laptop.node_id and rej["seq"] == 2
            assert rej["code"] in ("bad_signature", "bad_entry", "bad_encoding")


async def test_provincial_tree_and_laptop_at_two_hubs(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with make_hub(tmp_path, "root", root=True) as root:
        async with make_hub(tmp_path, "prov", upstream=root.url) as prov:
            await approve_when_enrolled(root, prov)
            async with (
                make_hub(tmp_path, "roomA", upstream=prov.url) as a,
                make_hub(tmp_path, "roomB", upstream=prov.url) as b,
            ):
                await approve_when_enrolled(prov, a)
                await approve_when_enrolled(prov, b)
                both = Identity.generate()  # enrolled at both room hubs
                only_a = Identity.generate()
                for h in (a, b):
                    await enroll_laptop(http, h, both)
                await enroll_laptop(http, a, only_a)
                shared = [r.raw for r in chain(both, forms(20, seed=4))]
                await push(http, a, shared)
                await push(http, b, shared)
                await push(http, a, [r.raw for r in chain(only_a, forms(6, seed=6))])
                await eventually(lambda: root.status()["entries"]["accepted"] == 26)
                await asyncio.sleep(0.5)
                s = root.status()
                assert s["entries"]["total"] == 26  # each entry once
                assert s["tps"]["single"] == 26
                for h in (a, b, prov):
                    await eventually(lambda h=h: h.status()["upstream"]["backlog"] == 0)


def test_record_helper_chain_is_contiguous() -> None:
    ident = Identity.generate()
    recs = chain(ident, forms(3))
    assert [r.seq for r in recs] == [1, 2, 3]
    assert recs[0].prev == record.GENESIS and recs[1].prev == recs[0].hash


async def test_root_dashboard_shows_totals_and_hubs(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with make_hub(tmp_path, "root", root=True) as root:
        async with make_hub(tmp_path, "room", upstream=root.url) as room:
            await approve_when_enrolled(root, room)
            laptop = Identity.generate()
            await enroll_laptop(http, room, laptop)
            await push(http, room, [r.raw for r in chain(laptop, forms(6))])
            await eventually(lambda: root.status()["entries"]["accepted"] == 6)
            async with http.get(root.url + "/?lang=en") as r:
                page = await r.text()
            votes = root.status()["totals"]["pemilu-2024"]["PPWP"]["votes"]
            assert "Vote totals pemilu-2024 PPWP: 6 TPS" in page
            assert f"<td>{votes['2']}</td>" in page  # the root's read-only page (hub.dashboard)
            assert room.ident.node_id in page and "Hubs sending" in page


async def test_idle_hub_notices_upstream_going_away(tmp_path: Path) -> None:
    root = make_hub(tmp_path, "root", root=True)
    await root.start()
    try:
        async with make_hub(tmp_path, "room", upstream=root.url) as room:
            room.forwarder.heartbeat_s = 0.2
            await approve_when_enrolled(root, room)
            await eventually(lambda: room.status()["upstream"]["state"] == "up")
            await root.stop()
            await eventually(lambda: room.status()["upstream"]["state"] in ("down", "backoff"))
            assert "cannot reach upstream" in room.status()["upstream"]["last_error"]
    finally:
        await root.stop()


async def test_upstream_that_lost_entries_gets_them_again(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    import sqlite3

    laptop = Identity.generate()
    recs = chain(laptop, forms(10))
    async with make_hub(tmp_path, "root", root=True) as root:
        async with make_hub(tmp_path, "room", upstream=root.url) as room:
            await approve_when_enrolled(root, room)
            await enroll_laptop(http, room, laptop)
            await push(http, room, [r.raw for r in recs])
            await eventually(lambda: room.status()["upstream"]["confirmed"] == 10)
        root_port = root.port
    # The national server is restored from a backup that holds only the first 4 entries.
    db = sqlite3.connect(tmp_path / "root" / "hub.db")
    with db:
        db.execute("DROP TRIGGER records_no_delete")
        db.execute("DELETE FROM records WHERE seq > 4")
    db.close()
    root = Hub(HubConfig(data_dir=tmp_path / "root", host="127.0.0.1", port=root_port,
                         mdns=False, root=True))  # fmt: skip
    async with root, make_hub(tmp_path, "room", upstream=root.url) as room:
        await eventually(lambda: root.status()["entries"]["accepted"] == 10)
        await eventually(lambda: room.status()["upstream"]["confirmed"] == 10)
        assert root.status()["entries"]["total"] == 10


async def test_hub_behind_upstream_confirms_and_stops_resending(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    laptop = Identity.generate()
    recs = [r.raw for r in chain(laptop, forms(10))]
    async with make_hub(tmp_path, "root", root=True) as root:
        async with make_hub(tmp_path, "a", upstream=root.url) as a:
            await approve_when_enrolled(root, a)
            await enroll_laptop(http, a, laptop)
            await push(http, a, recs)
            await eventually(lambda: root.status()["entries"]["accepted"] == 10)
        async with make_hub(tmp_path, "b", upstream=root.url) as b:
            await approve_when_enrolled(root, b)
            await enroll_laptop(http, b, laptop)
            await push(http, b, recs[:5])  # B holds less than upstream already has
            await eventually(lambda: b.status()["upstream"]["backlog"] == 0)
            assert b.status()["upstream"]["confirmed"] == 5
            pushed = b.forwarder.pushed
            await asyncio.sleep(1.0)
            assert b.forwarder.pushed == pushed  # nothing sent again and again
            assert root.status()["entries"]["total"] == 10


async def test_fork_seen_at_the_room_reaches_the_root(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    laptop = Identity.generate()
    recs = chain(laptop, forms(5, seed=1))
    copy = chain(laptop, forms(1, seed=2), start=3, prev=recs[1].hash)  # a copied folder's seq 3
    async with make_hub(tmp_path, "root", root=True) as root:
        async with make_hub(tmp_path, "room", upstream=root.url) as room:
            await approve_when_enrolled(root, room)
            await enroll_laptop(http, room, laptop)
            await push(http, room, [r.raw for r in recs])
            await eventually(lambda: root.status()["entries"]["accepted"] == 5)
            reply = await push(http, room, [copy[0].raw])
            assert reply["forks"]
            await eventually(lambda: root.status()["forks"] == 1)
            s = root.status()
            assert s["entries"] == {"accepted": 0, "held": 5, "total": 5}


async def test_revoking_a_hub_at_the_root_revokes_what_only_it_vouched_for(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    laptop = Identity.generate()
    recs = chain(laptop, forms(8))
    async with make_hub(tmp_path, "root", root=True) as root:
        async with make_hub(tmp_path, "room", upstream=root.url) as room:
            await approve_when_enrolled(root, room)
            await enroll_laptop(http, room, laptop)
            await push(http, room, [r.raw for r in recs[:5]])
            await eventually(lambda: root.status()["entries"]["accepted"] == 5)
            await root.revoke(root.service.store.devices[room.ident.public])
            lap = root.service.store.devices[laptop.public]
            assert lap.state == "revoked" and lap.revoked_after_seq == 5
            await push(http, room, [r.raw for r in recs[5:]])
            await eventually(lambda: room.status()["upstream"]["rejected"] >= 1)
            s = root.status()
            assert s["entries"]["accepted"] == 5 and s["devices"]["revoked"] == 2


async def test_status_of_a_stopped_hub_still_shows_its_upstream_backlog(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    laptop = Identity.generate()
    async with make_hub(tmp_path, "root", root=True) as root:
        async with make_hub(tmp_path, "room", upstream=root.url) as room:
            await approve_when_enrolled(root, room)
            await enroll_laptop(http, room, laptop)
            await push(http, room, [r.raw for r in chain(laptop, forms(4))])
            await eventually(lambda: room.status()["upstream"]["confirmed"] == 4)
    offline = Hub(HubConfig(data_dir=tmp_path / "room", mdns=False))
    await offline.open_offline()
    try:
        up = offline.status()["upstream"]
        assert (up["state"], up["confirmed"], up["backlog"]) == ("stopped", 4, 0)
    finally:
        await offline.stop()


# -- the table of scenarios (tests/protocol/test_outbox.py) through a real hub store ----------


class HubRig:
    """A real hub store (an offline ``Hub``) forwarded by ``hub.forwarder.Forwarder`` to a
    ``FakeRoot``, in memory or over loopback. Its timers are shortened by ``scale`` so that
    minutes of parking take seconds."""

    scale = 0.02

    def __init__(self, tmp: Path, root: FakeRoot, upstream: Upstream):
        self.tmp = tmp
        self.root = root
        self.upstream = upstream
        self.idents: dict[str, Identity] = {}
        self.held: dict[str, int] = {}
        self.hub = Hub(HubConfig(data_dir=tmp / "room", mdns=False))
        self.fwd: Forwarder | None = None

    def s(self, seconds: float) -> float:
        return seconds * self.scale

    @property
    def store(self) -> HubStore:
        return self.hub.service.store

    @property
    def _fwd(self) -> Forwarder:
        assert self.fwd is not None
        return self.fwd

    @property
    def hub_public(self) -> bytes:
        return self.hub.ident.public

    def sign(self, name: str, n: int, *, variant: int = 0) -> list[bytes]:
        return [r.raw for r in chain(self.idents[name], forms(n, seed=1 + variant))]

    async def device(self, name: str, n: int = 0, *, approved: bool = True) -> bytes:
        ident = self.idents[name] = Identity.generate()
        self.held[name] = 0
        req = enroll.make_request(ident, self.hub_public, name, "laptop", clock.now_s())
        await self.hub.service.enroll(req)
        if approved:
            await self.hub.service.approve(ident.node_id)
        await self.add(name, n)
        return ident.public

    async def add(self, name: str, n: int) -> None:
        raws = self.sign(name, self.held[name] + n)[self.held[name] :]
        if raws:
            await self.hub.service.push(raws)
        self.held[name] += n

    async def approve(self, name: str) -> None:
        await self.hub.service.approve(self.idents[name].node_id)

    async def fork(self, name: str, seq: int) -> None:
        prev = record.decode(self.sign(name, seq - 1)[-1]).hash if seq > 1 else record.GENESIS
        other = chain(self.idents[name], forms(1, seed=3), start=seq, prev=prev)[0]
        await self.hub.service.push([other.raw])

    async def pin(self, public: bytes) -> None:
        await self.store.set_meta(META_UPSTREAM_KEY, public)

    async def start(self) -> None:
        self.fwd = Forwarder(self.store, self.upstream, self.hub.ident, self.hub.name)
        box = self.fwd.outbox
        box.park_s, box.recheck_s = self.s(box.park_s), self.s(box.recheck_s)
        box.idle_s, box.heartbeat_s = self.s(box.idle_s), self.s(box.heartbeat_s)
        await self.fwd.start()

    async def until(self, cond: Callable[[], bool], what: str) -> None:
        await eventually(cond, 60.0, what)

    async def wait(self, seconds: float) -> None:
        await asyncio.sleep(self.s(seconds))

    def _dev(self, name: str) -> int:
        return self.store.devices[self.idents[name].public].id

    def confirmed(self, name: str) -> int:
        c = self.store.confirmed.get(self._dev(name))
        return 0 if c is None else c.seq

    def rejection(self, name: str) -> tuple[int | None, str] | None:
        r = self.store.rejections.get(self._dev(name))
        return None if r is None else (r.seq, r.code)

    def rejections_log(self) -> list[tuple[str, int | None, str]]:
        """Every refusal ever recorded, read from hub.db (the table keeps the history)."""
        names = {self._dev(n): n for n in self.idents}
        db = sqlite3.connect(f"file:{self.tmp / 'room' / 'hub.db'}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT dev, seq, code FROM upstream_rejections ORDER BY id")
            return [(names[dev], seq, code) for dev, seq, code in rows]
        finally:
            db.close()

    def pinned(self) -> bytes | None:
        return self.fwd.upstream_public if self.fwd is not None else None

    def state(self) -> str:
        return str(self._fwd.status()["state"])

    def last_error(self) -> str | None:
        return self._fwd.outbox.last_error

    def enrollment(self) -> str | None:
        return self._fwd.outbox.enrollment


@contextlib.asynccontextmanager
async def hub_rig(tmp: Path, root: FakeRoot, upstream: Upstream) -> AsyncIterator[HubRig]:
    init_data_dir(tmp / "room", "room")
    rig = HubRig(tmp, root, upstream)
    await rig.hub.open_offline()
    try:
        yield rig
    finally:
        if rig.fwd is not None:
            await rig.fwd.stop()
        await rig.hub.stop()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__)
async def test_scenario_through_the_forwarder(
    scenario: Callable[[HubRig], Awaitable[None]], tmp_path: Path
) -> None:
    root = FakeRoot(time.monotonic)
    upstream = FakeUpstream(root)
    async with hub_rig(tmp_path, root, upstream) as rig:
        await scenario(rig)
    assert upstream.closed  # stop() closes the upstream client


OVER_SOCKETS = [
    a_lost_answer_is_sent_again_and_confirmed_by_the_duplicate,
    a_busy_upstream_is_left_alone_for_its_retry_after,
    too_big_halves_the_batch,
    an_idle_hub_still_checks_on_its_upstream,
    a_refusal_parks_the_device_and_its_later_records_wait,
]


@pytest.mark.parametrize("scenario", OVER_SOCKETS, ids=lambda f: f.__name__)
async def test_scenario_over_http(
    scenario: Callable[[HubRig], Awaitable[None]], tmp_path: Path
) -> None:
    """The same, through ``HttpUpstream`` and a real socket: what aiohttp reports (a reset, a
    503 with Retry-After, a 413) must mean to the forwarder what the fake says it means."""
    root = FakeRoot(time.monotonic)
    async with serve(root) as url, hub_rig(tmp_path, root, HttpUpstream(url)) as rig:
        await scenario(rig)
