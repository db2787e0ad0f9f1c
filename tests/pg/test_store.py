"""The PostgreSQL store's contract, on a real PostgreSQL server (tests/servers/postgres.py):
exactly once per (origin, seq), forks once, heads never back, approvals move derived state,
several receivers (pools) at once, and the schema migrated once by concurrent starters."""

from __future__ import annotations

import asyncio
import random

import asyncpg
import pytest

from hub.memory import Confirmed
from hub.pg.forwarding import PgUpstreamStore
from hub.pg.schema import MIGRATIONS
from hub.pg.store import PgStore
from hub.protocol.ingest import ACCEPT, DUPLICATE, FORK, REJECT, Head
from hub.shared import generator
from hub.storage import OriginView
from tests.pg.helpers import check, forms, ident, sign


async def approved(store: PgStore, n: int) -> list:  # type: ignore[type-arg]
    out = []
    for i in range(n):
        who = ident(1000 + i)
        await store.enroll(who.public, f"Meja {i + 1}", "laptop", 1)
        await store.set_state(who.public, "approved", 2)
        out.append(who)
    return out


async def test_schema_is_migrated_once_by_concurrent_starters(pg_dsn: str) -> None:
    stores = await asyncio.gather(*(PgStore.open(pg_dsn, max_size=2) for _ in range(4)))
    try:
        rows = await stores[0].pool.fetch("SELECT version FROM schema_migrations ORDER BY 1")
        assert [r[0] for r in rows] == list(range(1, len(MIGRATIONS) + 1))
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_push_is_exactly_once_and_heads_only_move_forward(pg_dsn: str) -> None:
    store = await PgStore.open(pg_dsn)
    try:
        (who,) = await approved(store, 1)
        raws = sign(who, forms(6, seed=1))
        r1 = await store.push(check(raws[:4]), 10)
        assert r1.plan.counts()[ACCEPT] == 4
        assert r1.heads[who.public].seq == 4
        # A replay of everything: the held part is a no-op, the rest is new.
        r2 = await store.push(check(raws), 11)
        assert r2.plan.counts() == {ACCEPT: 2, DUPLICATE: 4, FORK: 0, REJECT: 0}
        assert r2.heads[who.public].seq == 6
        r3 = await store.push(check(raws[:3]), 12)
        assert r3.plan.counts()[DUPLICATE] == 3 and r3.heads[who.public].seq == 6
        assert await store.pool.fetchval("SELECT count(*) FROM records") == 6
        assert (await store.heads([who.public]))[who.public].seq == 6
        assert await store.record_raw(who.public, 5) == raws[4]
        # The database itself refuses a head going back and a changed record.
        with pytest.raises(asyncpg.exceptions.RaiseError, match="go back"):
            await store.pool.execute("UPDATE devices SET head_seq = 2")
        with pytest.raises(asyncpg.exceptions.RaiseError, match="immutable"):
            await store.pool.execute("DELETE FROM records WHERE seq = 6")
        counts = await store.status_counts()
        assert counts["entries"] == {"accepted": 6, "held": 0, "total": 6}
        assert counts["tps"]["single"] == 6
    finally:
        await store.close()


async def test_a_gap_is_refused_and_nothing_after_it_is_stored(pg_dsn: str) -> None:
    store = await PgStore.open(pg_dsn)
    try:
        (who,) = await approved(store, 1)
        raws = sign(who, forms(4, seed=2))
        r = await store.push(check([raws[0], raws[2], raws[3]]), 10)
        assert [o.decision for o in r.plan.outcomes] == [ACCEPT, REJECT, REJECT]
        assert r.plan.outcomes[1].code == "out_of_order"
        assert r.heads[who.public].seq == 1
    finally:
        await store.close()


async def test_a_fork_is_kept_once_as_evidence_and_stops_counting_the_origin(pg_dsn: str) -> None:
    store = await PgStore.open(pg_dsn)
    try:
        (who,) = await approved(store, 1)
        good = sign(who, forms(3, seed=3))
        other = sign(who, forms(3, seed=4))  # the same log, signed again from a copied folder
        await store.push(check(good), 10)
        assert (await store.status_counts())["tps"]["single"] == 3
        r = await store.push(check(other[1:2]), 11)
        assert r.plan.counts()[FORK] == 1
        again = await store.push(check(other), 12)  # the same evidence again: no second fork
        assert {o.code for o in again.plan.outcomes} == {"origin_forked"}
        rows = await store.fork_evidence()
        assert [(seq, raw, held) for _dev, seq, raw, held in rows] == [(2, other[1], good[1])]
        d = await store.device(who.public)
        assert d is not None and d.forked
        counts = await store.status_counts()
        assert counts["forks"] == 1
        assert counts["entries"] == {"accepted": 0, "held": 3, "total": 3}
        assert counts["tps"]["single"] == 0  # a forked device's entries are not counted
        with pytest.raises(asyncpg.exceptions.RaiseError, match="stays forked"):
            await store.pool.execute("UPDATE devices SET forked = false")
    finally:
        await store.close()


async def test_pending_entries_are_held_until_approval_and_cut_at_revocation(pg_dsn: str) -> None:
    store = await PgStore.open(pg_dsn)
    try:
        who = ident(7)
        raws = sign(who, forms(5, seed=5))
        r = await store.push(check(raws[:3]), 10)
        assert r.new_devices == [who.public]
        c = await store.status_counts()
        assert c["entries"] == {"accepted": 0, "held": 3, "total": 3}
        assert c["devices"]["pending"] == 1 and sum(c["tps"].values()) == 0
        await store.set_state(who.public, "approved", 11)
        c = await store.status_counts()
        assert c["entries"]["accepted"] == 3 and c["tps"]["single"] == 3
        await store.set_state(who.public, "revoked", 12)
        r = await store.push(check(raws), 13)
        assert [o.decision for o in r.plan.outcomes] == [DUPLICATE] * 3 + [REJECT] * 2
        c = await store.status_counts()
        assert c["entries"] == {"accepted": 3, "held": 0, "total": 3}
        assert c["tps"]["single"] == 3  # what it sent before its revocation still counts
    finally:
        await store.close()


async def test_root_refuses_unknown_origins(pg_dsn: str) -> None:
    store = await PgStore.open(pg_dsn, refuse_unknown=True)
    try:
        r = await store.push(check(sign(ident(8), forms(2, seed=6))), 10)
        assert {o.code for o in r.plan.outcomes} == {"not_endorsed"}
        assert await store.pool.fetchval("SELECT count(*) FROM devices") == 0
    finally:
        await store.close()


async def test_two_receivers_pushing_the_same_origins_store_each_record_once(
    pg_dsn: str,
) -> None:
    """Two pools (two receivers) get the same origins' records at the same moment, in
    overlapping slices, as two redundant hubs would send them: every record is accepted by
    exactly one of them, and the other finds it duplicate."""
    a, b = await PgStore.open(pg_dsn, max_size=4), await PgStore.open(pg_dsn, max_size=4)
    try:
        laptops = await approved(a, 4)
        logs = {w.public: sign(w, forms(60, seed=10 + i)) for i, w in enumerate(laptops)}
        rng = random.Random(1)
        accepted = 0
        for start in range(0, 60, 10):
            jobs = []
            for raws in logs.values():
                for store in (a, b):
                    lo = max(0, start - rng.randrange(0, 6))  # overlap: resend some held ones
                    jobs.append(store.push(check(raws[lo : start + 10]), start))
            for r in await asyncio.gather(*jobs):
                accepted += r.plan.counts()[ACCEPT]
                assert r.plan.counts()[FORK] == 0
        assert accepted == 4 * 60
        assert await a.pool.fetchval("SELECT count(*) FROM records") == 4 * 60
        heads = await b.heads()
        assert {p: h.seq for p, h in heads.items()} == dict.fromkeys(logs, 60)
        counts = await b.status_counts()
        assert counts["entries"]["accepted"] == 240 and counts["tps"]["single"] == 240
    finally:
        await a.close()
        await b.close()


async def test_a_fork_raced_through_two_receivers_is_detected_once(pg_dsn: str) -> None:
    """The original log and a copy signed from a copied data folder reach two receivers at
    the same moment: one is stored, the other is a fork, recorded once."""
    a, b = await PgStore.open(pg_dsn), await PgStore.open(pg_dsn)
    try:
        for round_ in range(3):
            (who,) = await approved(a, 1) if round_ == 0 else [ident(2000 + round_)]
            if round_:
                await a.enroll(who.public, "x", "laptop", 1)
                await a.set_state(who.public, "approved", 2)
            one = sign(who, forms(5, seed=20 + round_))
            two = sign(who, forms(5, seed=40 + round_))
            ra, rb = await asyncio.gather(a.push(check(one), 1), b.push(check(two), 1))
            decided = sorted([ra.plan.counts()[ACCEPT], rb.plan.counts()[ACCEPT]])
            assert decided == [0, 5]
            assert ra.plan.counts()[FORK] + rb.plan.counts()[FORK] == 1
        assert len(await a.fork_evidence()) == 3
    finally:
        await a.close()
        await b.close()


async def test_double_entry_across_receivers_is_verified_or_conflict(pg_dsn: str) -> None:
    """Laptop 1 typed 20 TPS; laptops 2 and 3 type them again and push through two receivers
    at the same moment: the derived state of each TPS sees all three entries (no lost update),
    verified when equal, conflict when one differs."""
    a, b = await PgStore.open(pg_dsn), await PgStore.open(pg_dsn)
    try:
        l1, l2, l3 = await approved(a, 3)
        base = forms(200, seed=30)
        await a.push(check(sign(l1, base)), 1)
        assert (await a.status_counts())["tps"]["single"] == 200
        twin2 = [dict(f, operator="Op 2") for f in base]
        twin2[0] = dict(twin2[0], sah=twin2[0]["sah"] + 1)  # one typing slip: a conflict
        twin3 = [dict(f, operator="Op 3") for f in base]
        await asyncio.gather(a.push(check(sign(l2, twin2)), 2), b.push(check(sign(l3, twin3)), 2))
        c = await a.status_counts()
        assert c["tps"] == {"single": 0, "verified": 199, "conflict": 1}
        assert await a.pool.fetchval("SELECT sum(entries) FROM tps_state") == 600
        conflicts = await a.conflicts()
        assert [x["tps"] for x in conflicts] == [base[0]["tps"]]
        assert len(conflicts[0]["live"]) == 3
    finally:
        await a.close()
        await b.close()


async def test_first_entries_of_the_same_tps_at_once_through_two_receivers(
    pg_dsn: str,
) -> None:
    """Two laptops type the same new TPS (no state yet) and push through two receivers at the
    same moment, several times over: the second to write a TPS's state derives it from both
    entries."""
    a, b = await PgStore.open(pg_dsn), await PgStore.open(pg_dsn)
    try:
        l1, l2 = await approved(a, 2)
        base = forms(300, seed=60)
        twin = [dict(f, operator="Op 2") for f in base]
        twin[7] = dict(twin[7], sah=twin[7]["sah"] + 1)
        r1, r2 = sign(l1, base), sign(l2, twin)
        for i in range(0, 300, 50):
            await asyncio.gather(a.push(check(r1[i : i + 50]), 1), b.push(check(r2[i : i + 50]), 1))
        c = await a.status_counts()
        assert c["tps"] == {"single": 0, "verified": 299, "conflict": 1}
        assert await a.pool.fetchval("SELECT sum(entries) FROM tps_state") == 600
        national = await a.results(base[0]["election"])
        assert national["forms"]["PPWP"]["tps_counted"] == 299
    finally:
        await a.close()
        await b.close()


async def test_derived_state_of_a_tps_waits_for_the_other_writer_of_that_tps(
    pg_dsn: str,
) -> None:
    """While another transaction holds a TPS's state row (another receiver mid-push for the
    same TPS), a push touching that TPS waits for it instead of deriving from stale rows."""
    store = await PgStore.open(pg_dsn)
    try:
        l1, l2 = await approved(store, 2)
        base = forms(1, seed=50)
        await store.push(check(sign(l1, base)), 1)
        other = await asyncpg.connect(pg_dsn)
        try:
            tx = other.transaction()
            await tx.start()
            await other.execute("SELECT 1 FROM tps_state FOR UPDATE")
            push = asyncio.ensure_future(store.push(check(sign(l2, base)), 2))
            await asyncio.sleep(0.5)
            assert not push.done()  # blocked on the TPS row, not deriving without it
            await tx.rollback()
            r = await asyncio.wait_for(push, 30)
            assert r.plan.counts()[ACCEPT] == 1
        finally:
            await other.close()
        assert (await store.status_counts())["tps"]["verified"] == 1
    finally:
        await store.close()


def test_generator_codes_are_under_the_synthetic_province() -> None:
    """The builders above put everything under province 99 (results tests rely on it)."""
    codes = generator.tps_codes(None, "99", random.Random(1))
    assert all(next(codes).startswith("99") for _ in range(10))


async def test_origin_head_reads_row_head_and_upstream_receipt_together(pg_dsn: str) -> None:
    store = await PgStore.open(pg_dsn, max_size=2)
    try:
        assert await store.origin_head(ident(1).public) == OriginView(None, Head(), None)
        (who,) = await approved(store, 1)
        v = await store.origin_head(who.public)
        assert v.device is not None and v.device.state == "approved"
        assert (v.head, v.confirmed) == (Head(), None)
        await store.push(check(sign(who, forms(3, seed=7))), 3)
        held = (await store.heads_of([who.public]))[who.public]
        await PgUpstreamStore(store).confirm(v.device.id, 2, b"h" * 32, b"receipt", 9)
        v = await store.origin_head(who.public)
        assert v.device == await store.device(who.public)
        assert v.head == held and v.head.seq == 3
        assert v.confirmed == Confirmed(2, b"h" * 32, b"receipt", 9)
    finally:
        await store.close()
