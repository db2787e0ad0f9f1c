"""The hub store applies the quotas on what devices nobody approved make it keep
(``hub.protocol.quota``), with the figures kept in memory: on a real SQLite file, and checked
against what the same file reads back as after a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.examine import examine_batch
from hub.protocol import enroll, record
from hub.protocol.identity import Identity
from hub.protocol.quota import QuotaError, Quotas, Usage
from hub.store import HubStore
from tests.helpers import chain, forms

HUB = Identity.from_seed(b"\x51" * 32)


def figures(store: HubStore) -> tuple[dict[bytes, Usage], Usage, int, tuple[int, int]]:
    return dict(store.held), store.held_total, store.pending_count, store.room_forks()


async def reopened(path: Path, store: HubStore, quotas: Quotas) -> HubStore:
    """The store closed and opened again, its memory read back from the file: the quota
    figures kept in memory at each commit are what the file says."""
    before = figures(store)
    await store.close()
    store = await HubStore.open(path, quotas=quotas)
    assert figures(store) == before
    return store


async def push(store: HubStore, raws: list[bytes], now: int = 1) -> dict[str, int]:
    result = await store.push(await examine_batch(None, raws, None), now)
    codes = {}
    for o in result.plan.outcomes:
        key = o.code or o.decision
        codes[key] = codes.get(key, 0) + 1
    return codes


async def test_held_usage_is_counted_at_commit_and_matches_a_reload(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    q = Quotas(held_records_per_device=3, held_records=5)
    store = await HubStore.open(tmp_path, quotas=q)
    try:
        a, b = Identity.generate(), Identity.generate()
        ra = [r.raw for r in chain(a, forms(4, seed=1))]
        rb = [r.raw for r in chain(b, forms(3, seed=2))]
        assert await push(store, ra) == {"accept": 3, "quota": 1}
        assert await push(store, rb) == {"accept": 2, "quota": 1}  # the total: 5
        said = [r.getMessage() for r in caplog.records if "for a quota" in r.getMessage()]
        assert len(said) == 1 and "refused 1 record(s)" in said[0], said  # once a minute
        assert "max_held_records_per_device" in said[0]
        size_a = sum(map(len, ra[:3]))
        assert store.held[a.public] == Usage(3, size_a)
        assert store.held_total == Usage(5, size_a + sum(map(len, rb[:2])))
        assert store.pending_count == 2 and store.records_stored == 5
        store = await reopened(tmp_path, store, q)

        # Approving a lifts its quota and frees its share of the total.
        await store.approve(a.public, 2)
        assert a.public not in store.held and store.held_total == Usage(2, sum(map(len, rb[:2])))
        assert store.pending_count == 1
        assert await push(store, ra) == {"duplicate": 3, "accept": 1}
        assert await push(store, rb) == {"duplicate": 2, "accept": 1}  # room again
        store = await reopened(tmp_path, store, q)
    finally:
        await store.close()


async def test_enrollment_and_endorsements_stop_at_the_pending_quota(tmp_path: Path) -> None:
    q = Quotas(pending_devices=2)
    store = await HubStore.open(tmp_path, quotas=q)
    try:
        hub, lap, late = (Identity.generate() for _ in range(3))
        await store.enroll(hub.public, "Lantai 2", "hub", 1)
        await store.enroll(lap.public, "Meja 1", "laptop", 1)
        with pytest.raises(QuotaError, match="max_pending_devices"):
            await store.enroll(late.public, "Meja 2", "laptop", 1)
        await store.enroll(lap.public, "Meja 1", "laptop", 2)  # known: not a new device
        assert store.pending_count == 2 and late.public not in store.devices
        # The pending hub vouches for a newcomer: no room, so it is not admitted.
        word = enroll.open_endorsement(enroll.endorse(hub, late.public, "Meja 2", "laptop", 1))
        await store.push([], 2, [word])
        assert late.public not in store.devices and not store.endorsements.get(late.public)
        # Its records are refused with quota and make no device.
        raws = [r.raw for r in chain(late, forms(2, seed=3))]
        assert await push(store, raws) == {"quota": 2}
        assert late.public not in store.devices
        # Revoking a stranger makes room.
        await store.revoke(lap.public, 3)
        assert store.pending_count == 1
        assert await push(store, raws) == {"accept": 2}
        assert store.pending_count == 2
        store = await reopened(tmp_path, store, q)
    finally:
        await store.close()


async def test_forks_are_counted_per_device_and_split_by_approval(tmp_path: Path) -> None:
    store = await HubStore.open(tmp_path)
    try:
        stranger, ours = Identity.generate(), Identity.generate()
        for ident, seed in ((stranger, 4), (ours, 5)):
            raws = [r.raw for r in chain(ident, forms(2, seed=seed))]
            await push(store, raws)
            if ident is ours:
                await store.approve(ours.public, 2)
            other = chain(ident, forms(1, seed=seed + 10), start=2, prev=record.GENESIS)
            assert await push(store, [other[0].raw]) == {"fork": 1}
        assert store.room_forks() == (1, 1) and store.fork_count == 2
        listed = {f["device"]: f["unapproved"] for f in await store.forks()}
        assert listed == {stranger.node_id: True, ours.node_id: False}
        store = await reopened(tmp_path, store, Quotas())
    finally:
        await store.close()
