"""The quotas on what devices nobody approved make a hub keep (``hub.protocol.quota``), as
part of the storage contract: both stores take the same decisions (docs/protocol.md "Quotas
on unapproved devices"). Several receivers racing on one PostgreSQL: tests/pg/test_quotas.py."""

from __future__ import annotations

import pytest

from hub.protocol import enroll
from hub.protocol.quota import QuotaError, Quotas
from hub.storage import HubStorage
from tests.pg.helpers import check, forms, ident, sign
from tests.storecontract.conftest import Opener


async def codes(store: HubStorage, raws: list[bytes], now: int = 1) -> dict[str, int]:
    """What a push of ``raws`` came to: per outcome, its code (refusals) or its decision."""
    out: dict[str, int] = {}
    for o in (await store.push(check(raws), now)).plan.outcomes:
        out[o.code or o.decision] = out.get(o.code or o.decision, 0) + 1
    return out


async def test_held_records_stop_at_the_quotas_per_device_and_in_total(open_store: Opener) -> None:
    store = await open_store(quotas=Quotas(held_records_per_device=3, held_records=5))
    a, b = ident(70), ident(71)
    ra, rb = sign(a, forms(4, seed=70)), sign(b, forms(3, seed=71))
    assert await codes(store, ra) == {"accept": 3, "quota": 1}
    r = await store.push(check(rb), 2)
    assert r.plan.counts()["accept"] == 2  # the total: 5
    (over,) = [o for o in r.plan.outcomes if o.code == "quota"]
    assert over.seq == 3 and "(max_held_records)" in str(over.reason)
    assert "no receipt" in str(over.reason)
    assert r.heads[b.public].seq == 2  # the refused record is not stored
    held = sum(map(len, ra[:3])) + sum(map(len, rb[:2]))
    c = await store.counters()
    assert (c.records_stored, c.held_records, c.held_bytes) == (5, 5, held)
    assert c.devices == {"pending": 2}

    # Approving a lifts its quota and frees its share of the total.
    await store.approve(a.public, 3)
    c = await store.counters()
    assert (c.held_records, c.held_bytes) == (2, sum(map(len, rb[:2])))
    assert await codes(store, ra, 4) == {"duplicate": 3, "accept": 1}
    assert await codes(store, rb, 4) == {"duplicate": 2, "accept": 1}  # room again
    assert (await store.counters()).held_records == 3


async def test_held_bytes_are_the_signed_records_as_stored(open_store: Opener) -> None:
    a, b = ident(72), ident(73)
    ra, rb = sign(a, forms(3, seed=72)), sign(b, forms(2, seed=73))
    two = len(ra[0]) + len(ra[1])
    quotas = Quotas(held_bytes_per_device=two, held_bytes=two + len(rb[0]) - 1)
    store = await open_store(quotas=quotas)
    r = await store.push(check(ra), 1)
    assert [o.code for o in r.plan.outcomes] == [None, None, "quota"]
    assert "max_held_bytes_per_device" in str(r.plan.outcomes[2].reason)
    r = await store.push(check(rb), 1)  # the total: one byte short
    assert [o.code for o in r.plan.outcomes] == ["quota", "quota"]
    assert "max_held_bytes" in str(r.plan.outcomes[0].reason)
    assert await store.device(b.public) is None  # nothing kept: no device made
    assert (await store.counters()).held_bytes == two


async def test_enrollment_and_endorsements_stop_at_the_pending_quota(open_store: Opener) -> None:
    store = await open_store(quotas=Quotas(pending_devices=2))
    hub, lap, late = ident(80), ident(81), ident(82)
    await store.enroll(hub.public, "Lantai 2", "hub", 1)
    await store.enroll(lap.public, "Meja 1", "laptop", 1)
    with pytest.raises(QuotaError, match="max_pending_devices") as err:
        await store.enroll(late.public, "Meja 2", "laptop", 1)
    assert err.value.code == "quota"
    await store.enroll(lap.public, "Meja 1", "laptop", 2)  # known: not a new device
    assert (await store.counters()).devices == {"pending": 2}
    assert await store.device(late.public) is None
    # The pending hub vouches for a newcomer: no room, so it is not admitted.
    word = enroll.open_endorsement(enroll.endorse(hub, late.public, "Meja 2", "laptop", 1))
    await store.push([], 2, [word])
    assert await store.device(late.public) is None and not await store.holds_endorsement(word)
    # Its records are refused with quota and make no device.
    raws = sign(late, forms(2, seed=82))
    assert await codes(store, raws) == {"quota": 2}
    assert await store.device(late.public) is None
    # Revoking a stranger makes room.
    await store.revoke(lap.public, 3)
    assert await codes(store, raws) == {"accept": 2}
    assert (await store.counters()).devices == {"pending": 2, "revoked": 1}
    with pytest.raises(QuotaError):
        await store.enroll(ident(83).public, "Meja 3", "laptop", 4)
    await store.approve(hub.public, 5)  # approving makes room too
    assert (await store.enroll(ident(83).public, "Meja 3", "laptop", 5)).state == "pending"


async def test_an_unknown_key_whose_records_are_all_refused_leaves_nothing(
    store: HubStorage,
) -> None:
    who = ident(84)
    raws = sign(who, forms(3, seed=84))
    assert await codes(store, raws[1:]) == {"out_of_order": 2}
    assert await store.device(who.public) is None and await store.heads_of([who.public]) == {}
    assert (await store.counters()).devices.get("pending", 0) == 0
