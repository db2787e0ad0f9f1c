"""The hub store's failure paths, on a real SQLite file with injected faults."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from hub import store as hub_store
from hub.examine import examine_batch
from hub.protocol import enroll
from hub.protocol.identity import Identity
from hub.store import HubStore, StoreUnavailable
from tests.helpers import chain, forms


def disk_full(times: int = 1) -> Callable[[], Awaitable[None]]:
    """A ``Database.before_commit`` hook: the next ``times`` COMMITs fail as on a full disk."""
    left = [times]

    async def hook() -> None:
        if left[0] > 0:
            left[0] -= 1
            raise sqlite3.OperationalError("database or disk is full")

    return hook


async def test_failed_commit_answers_the_pusher_and_loses_nothing(tmp_path: Path) -> None:
    store = await HubStore.open(tmp_path)
    try:
        laptop = Identity.generate()
        recs = [r.raw for r in chain(laptop, forms(4))]
        await store.push(await examine_batch(None, recs[:2], None), 1)
        store.db.before_commit = disk_full()
        with pytest.raises(StoreUnavailable, match="disk is full"):
            await asyncio.wait_for(store.push(await examine_batch(None, recs[2:], None), 2), 10)
        result = await store.push(await examine_batch(None, recs[2:], None), 3)
        assert result.plan.counts()["accept"] == 2
        assert store.head_of(laptop.public).seq == 4 and store.records_stored == 4
    finally:
        await store.close()


async def test_unrecoverable_store_refuses_pushes_instead_of_hanging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await HubStore.open(tmp_path)
    laptop = Identity.generate()
    recs = [r.raw for r in chain(laptop, forms(2))]

    async def unreadable(*_a: object) -> object:
        raise sqlite3.OperationalError("disk I/O error")

    store.db.before_commit = disk_full()
    monkeypatch.setattr(hub_store, "load", unreadable)  # and the state cannot be read back
    with pytest.raises(StoreUnavailable, match="could not store"):
        await asyncio.wait_for(store.push(await examine_batch(None, recs, None), 1), 10)
    with pytest.raises(StoreUnavailable, match="restarted"):
        await asyncio.wait_for(store.push(await examine_batch(None, recs, None), 2), 10)
    await store.close()


class HeldCommit:
    """A ``Database.before_commit`` hook that holds the next write transaction open (its rows
    written, not committed) until ``fail()``: then its COMMIT fails as on a full disk."""

    def __init__(self) -> None:
        self.holding = asyncio.Event()
        self._go = asyncio.Event()

    async def __call__(self) -> None:
        self.holding.set()
        await self._go.wait()
        raise sqlite3.OperationalError("database or disk is full")

    def fail(self) -> None:
        self._go.set()


def committed(path: Path, sql: str) -> list[tuple[object, ...]]:
    """What another process would read from the file."""
    with contextlib.closing(sqlite3.connect(path / "hub.db")) as db:
        return list(db.execute(sql))


async def test_readers_never_see_an_open_push_nor_a_failed_one(tmp_path: Path) -> None:
    store = await HubStore.open(tmp_path)
    hold = HeldCommit()  # released in any case: a failed check must not hang the test
    try:
        laptop = Identity.generate()
        recs = [r.raw for r in chain(laptop, forms(4))]
        await store.push(await examine_batch(None, recs[:2], None), 1)
        await store.approve(laptop.public, 1)
        dev = store.devices[laptop.public].id

        async def seen() -> tuple[object, ...]:
            """Everything the store's public read API says about the laptop's log."""
            return (
                store.head_of(laptop.public).seq,
                store.heads[dev].seq,
                await store.record_raw(laptop.public, 3),
                await store.records_after(dev, 0, 10),
                await store.received_at(dev, 3),
                [seq async for _d, seq, _raw in store.iter_records()],
                store.records_stored,
                store.counts[dev],
                store.backlog(),
                store.snapshot().heads[dev].seq,
                len(store.snapshot().facts),
            )

        before = await seen()
        assert before == (2, 2, None, recs[:2], None, [1, 2], 2, 2, 2, 2, 2)
        samples: list[int] = []
        done = asyncio.Event()

        async def sample() -> None:  # a reader polling the head all along
            while not done.is_set():
                samples.append(store.head_of(laptop.public).seq)
                await asyncio.sleep(0)

        sampler = asyncio.create_task(sample())
        store.db.before_commit = hold
        pushing = asyncio.create_task(store.push(await examine_batch(None, recs[2:], None), 2))
        await asyncio.wait_for(hold.holding.wait(), 10)  # seq 3 and 4 written, not committed
        assert await seen() == before
        store.db.before_commit = None
        hold.fail()
        with pytest.raises(StoreUnavailable, match="disk is full"):
            await asyncio.wait_for(pushing, 10)
        await store.push([], 3)  # queued behind the reload: returns once it is done
        done.set()
        await sampler
        assert await seen() == before
        assert set(samples) == {2}  # never ahead of the disk, never behind it during the reload
        assert committed(tmp_path, "SELECT seq FROM records ORDER BY seq") == [(1,), (2,)]
        result = await store.push(await examine_batch(None, recs[2:], None), 4)
        assert result.plan.counts()["accept"] == 2 and store.head_of(laptop.public).seq == 4
    finally:
        hold.fail()
        await store.close()


async def test_an_approval_carried_by_a_push_counts_only_once_committed(tmp_path: Path) -> None:
    store = await HubStore.open(tmp_path, refuse_unknown=True)  # the root: chains required
    hold = HeldCommit()  # released in any case: a failed check must not hang the test
    try:
        hub, new, waiting = Identity.generate(), Identity.generate(), Identity.generate()
        await store.enroll(hub.public, "Room", "hub", 1)
        await store.approve(hub.public, 1, b"E(room)")
        await store.enroll(waiting.public, "W", "laptop", 1)
        carried = [
            enroll.endorse(hub, new.public, "N", "laptop", 2),
            enroll.endorse(hub, waiting.public, "W", "laptop", 2),
        ]
        recs = [r.raw for r in chain(new, forms(3))]

        def trusted() -> tuple[object, ...]:
            return (
                new.public in store.devices,
                store.devices[waiting.public].state,
                dict(store.endorsements),
                [store.knows_endorsement(e) for e in carried],
                store.chain_for([new.public, waiting.public]),
                store.head_of(new.public).seq,
                {d.state for d in store.snapshot().devices.values()},
            )

        before = trusted()
        assert before == (False, "pending", {}, [False, False], [], 0, {"approved", "pending"})
        store.db.before_commit = hold
        opened = [enroll.open_endorsement(e) for e in carried]
        pushing = asyncio.create_task(store.push(await examine_batch(None, recs, None), 2, opened))
        await asyncio.wait_for(hold.holding.wait(), 10)
        assert trusted() == before
        store.db.before_commit = None
        hold.fail()
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(pushing, 10)
        await store.push([], 3)
        assert trusted() == before
        assert committed(tmp_path, "SELECT COUNT(*) FROM endorsements") == [(0,)]
        assert committed(tmp_path, "SELECT state FROM devices ORDER BY id") == [
            ("approved",),
            ("pending",),
        ]
        # Sent again, it counts.
        result = await store.push(await examine_batch(None, recs, None), 4, opened)
        assert result.plan.counts()["accept"] == 3
        assert store.devices[new.public].state == store.devices[waiting.public].state == "approved"
        assert store.chain_for([new.public]) == [carried[0], b"E(room)"]
    finally:
        hold.fail()
        await store.close()


async def test_store_is_durable_wal_full(tmp_path: Path) -> None:
    store = await HubStore.open(tmp_path)
    try:
        row = await store.db.fetchone("PRAGMA journal_mode")
        assert row is not None and row[0] == "wal"
        async with store.db.transaction() as writer:
            rows = list(await writer.execute_fetchall("PRAGMA synchronous"))
        assert rows[0][0] == 2  # FULL: a COMMIT is on disk when it returns
    finally:
        await store.close()


async def test_stored_records_cannot_be_changed_or_deleted(tmp_path: Path) -> None:
    store = await HubStore.open(tmp_path)
    laptop = Identity.generate()
    await store.push(await examine_batch(None, [r.raw for r in chain(laptop, forms(2))], None), 1)
    await store.close()
    db = sqlite3.connect(tmp_path / "hub.db")
    for sql in ("UPDATE records SET raw = x'00'", "DELETE FROM records"):
        with pytest.raises(sqlite3.IntegrityError, match="immutable"):
            db.execute(sql)
    db.close()


# -- trust: enrollment, approval and revocation cascades, endorsements ------------------------


UPSTREAM = Identity.from_seed(bytes(32))  # the node above, whose endorsement approves here


async def _endorse(store: HubStore, raws: list[bytes], now: int = 5) -> None:
    """Hand the store endorsements the way a push from a lower hub carries them."""
    await store.push([], now, [enroll.open_endorsement(raw) for raw in raws])


async def test_endorsements_chain_in_any_order_and_approval_cascades(tmp_path: Path) -> None:
    store = await HubStore.open(tmp_path, refuse_unknown=True)
    try:
        prov, room, laptop = Identity.generate(), Identity.generate(), Identity.generate()
        p = await store.enroll(prov.public, "Prov", "hub", 1)
        # Child before parent: the laptop's endorsement waits for the room hub's in one push.
        await _endorse(store, [
            enroll.endorse(room, laptop.public, "L", "laptop", 2),
            enroll.endorse(prov, room.public, "Room", "hub", 2),
        ])  # fmt: skip
        r, lap = store.devices[room.public], store.devices[laptop.public]
        assert (r.state, r.role, r.name) == ("pending", "hub", "Room")
        assert (lap.state, lap.role) == ("pending", "laptop")
        assert set(store.endorsements[laptop.public]) == {room.public}
        await store.approve(p.public, 9, enroll.endorse(UPSTREAM, p.public, "", "hub", 9))
        assert store.devices[room.public].state == "approved"  # through the province's word
        assert store.devices[laptop.public].state == "approved"  # through the room's
        assert store.devices[laptop.public].approved_at == 9
        assert store.devices[laptop.public].endorsement is None  # not approved here directly
    finally:
        await store.close()


async def test_an_approved_hubs_word_approves_on_arrival_others_are_ignored(
    tmp_path: Path,
) -> None:
    store = await HubStore.open(tmp_path)
    try:
        hub, lap_hub, forked_hub = Identity.generate(), Identity.generate(), Identity.generate()
        h = await store.enroll(hub.public, "H", "hub", 1)
        await store.approve(h.public, 1)
        lh = await store.enroll(lap_hub.public, "a laptop", "laptop", 1)
        await store.approve(lh.public, 1)
        new, pending, revoked = Identity.generate(), Identity.generate(), Identity.generate()
        await store.enroll(pending.public, "P", "laptop", 1)
        rv = await store.enroll(revoked.public, "R", "laptop", 1)
        await store.revoke(rv.public, 1)
        strangers = [Identity.generate() for _ in range(3)]
        await _endorse(store, [
            enroll.endorse(hub, new.public, "N", "laptop", 2),
            enroll.endorse(hub, pending.public, "P", "laptop", 2),
            enroll.endorse(hub, revoked.public, "R", "laptop", 2),
            enroll.endorse(lap_hub, strangers[0].public, "S0", "laptop", 2),  # a laptop's word
            enroll.endorse(Identity.generate(), strangers[1].public, "S1", "laptop", 2),  # unknown
        ])  # fmt: skip
        assert store.devices[new.public].state == "approved"
        assert store.devices[new.public].name == "N"
        assert store.devices[pending.public].state == "approved"
        assert store.devices[revoked.public].state == "revoked"
        assert strangers[0].public not in store.devices
        assert strangers[1].public not in store.devices
        assert set(store.endorsements) == {new.public, pending.public, revoked.public}
        # A forked hub's word counts for nothing.
        fh = await store.enroll(forked_hub.public, "F", "hub", 1)
        await store.approve(fh.public, 1)
        laptop = Identity.generate()
        a = chain(forked_hub, forms(2, seed=1))
        b = chain(forked_hub, forms(1, seed=2), start=2, prev=a[0].hash)
        await store.push(await examine_batch(None, [r.raw for r in a], None), 3)
        await store.push(await examine_batch(None, [b[0].raw], None), 3)
        assert store.devices[forked_hub.public].forked
        await _endorse(store, [enroll.endorse(forked_hub, laptop.public, "L", "laptop", 4)])
        assert laptop.public not in store.devices
        assert store.knows_endorsement(enroll.endorse(hub, new.public, "N", "laptop", 2))
    finally:
        await store.close()


async def test_revoking_a_hub_revokes_what_only_it_vouched_for(tmp_path: Path) -> None:
    store = await HubStore.open(tmp_path)
    try:
        h1, h2 = Identity.generate(), Identity.generate()
        only, both, direct, sub = (Identity.generate() for _ in range(4))
        for ident, name in ((h1, "H1"), (h2, "H2")):
            d = await store.enroll(ident.public, name, "hub", 1)
            await store.approve(d.public, 1)
        sub_hub = Identity.generate()
        await _endorse(store, [
            enroll.endorse(h1, only.public, "only", "laptop", 2),
            enroll.endorse(h1, both.public, "both", "laptop", 2),
            enroll.endorse(h2, both.public, "both", "laptop", 2),
            enroll.endorse(h1, direct.public, "direct", "laptop", 2),
            enroll.endorse(h1, sub_hub.public, "sub", "hub", 2),
            enroll.endorse(sub_hub, sub.public, "under sub", "laptop", 2),
        ])  # fmt: skip
        d = store.devices[direct.public]
        await store.approve(d.public, 3, b"own endorsement")
        await store.push(await examine_batch(None, [r.raw for r in chain(only, forms(3))], None), 4)
        await store.revoke(h1.public, 5)
        states = {p: store.devices[p.public].state for p in (only, both, direct, sub_hub, sub)}
        assert states == {only: "revoked", both: "approved", direct: "approved",
                          sub_hub: "revoked", sub: "revoked"}  # fmt: skip
        assert store.devices[only.public].revoked_after_seq == 3  # what it sent before stays
        assert store.devices[sub.public].revoked_after_seq == 0
        assert store.devices[h1.public].revoked_at == 5
        await store.revoke(only.public, 6)  # again: what it sent before stays counted
        assert store.devices[only.public].revoked_after_seq == 3
    finally:
        await store.close()


async def test_chain_for_and_backlog(tmp_path: Path) -> None:
    store = await HubStore.open(tmp_path)
    try:
        root_hub, mid = Identity.generate(), Identity.generate()
        lap, own = Identity.generate(), Identity.generate()
        r = await store.enroll(root_hub.public, "R", "hub", 1)
        await store.approve(r.public, 1, b"E(root_hub)")
        e_mid = enroll.endorse(root_hub, mid.public, "M", "hub", 2)
        e_lap = enroll.endorse(mid, lap.public, "L", "laptop", 2)
        await _endorse(store, [e_mid, e_lap])
        o = await store.enroll(own.public, "O", "laptop", 1)
        await store.approve(o.public, 1, b"E(own)")
        assert store.chain_for([lap.public]) == [e_lap, e_mid, b"E(root_hub)"]
        assert store.chain_for([own.public, lap.public]) == [
            e_lap,
            e_mid,
            b"E(root_hub)",
            b"E(own)",
        ]
        assert store.chain_for([Identity.generate().public]) == []
        # Backlog: what may be forwarded (approved: all; revoked: up to the cut; pending and
        # forked: nothing) minus what upstream confirmed.
        for ident in (lap, own):
            recs = [x.raw for x in chain(ident, forms(4, seed=3))]
            await store.push(await examine_batch(None, recs, None), 3)
        assert store.backlog() == 8
        await store.confirm(store.devices[own.public].id, 3, b"h" * 32, b"receipt", 4)
        assert store.backlog() == 5
        await store.revoke(mid.public, 5)
        assert store.devices[lap.public].state == "revoked"
        assert store.backlog() == 5  # revoked after seq 4: those four still go
        pending = Identity.generate()
        await store.push(await examine_batch(None, [chain(pending, forms(1))[0].raw], None), 6)
        assert store.backlog() == 5
    finally:
        await store.close()


async def test_a_role_is_fixed_once_approved(tmp_path: Path) -> None:
    store = await HubStore.open(tmp_path)
    try:
        a, b = Identity.generate(), Identity.generate()
        await store.enroll(a.public, "", "laptop", 1)
        d = await store.enroll(a.public, "A", "hub", 2)  # still pending: may change
        assert (d.role, d.name, d.last_seen) == ("hub", "A", 2)
        d = await store.enroll(a.public, "other", "hub", 3)
        assert d.name == "A"  # a name, once given, stays
        db = await store.enroll(b.public, "B", "laptop", 1)
        await store.approve(db.public, 2)
        assert (await store.enroll(b.public, "B", "hub", 3)).role == "laptop"
        await store.revoke(b.public, 4)
        assert (await store.enroll(b.public, "B", "hub", 5)).role == "laptop"
    finally:
        await store.close()
