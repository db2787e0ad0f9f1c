"""Forwarding upstream between in-process hubs on real loopback sockets and real SQLite."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from hub.config import HubConfig
from hub.node import Hub, init_data_dir
from hub.protocol import codec, enroll, receipt, record
from hub.protocol.identity import Identity
from tests.helpers import chain, forms


async def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait until ``check()`` holds (a bounded wait for background work, not a speed test)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


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
    await hub.approve(hub._store().devices[ident.public])


async def approve_when_enrolled(parent: Hub, child: Hub) -> None:
    await eventually(lambda: child.ident.public in parent._store().devices)
    await parent.approve(parent._store().devices[child.ident.public])


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
            await room.approve(room._store().devices[held.public])
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
            assert rogue.public not in root._store().devices


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
            assert f"<td>{votes['2']}</td>" in page
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
            await root.revoke(root._store().devices[room.ident.public])
            lap = root._store().devices[laptop.public]
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
