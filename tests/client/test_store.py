"""The laptop store on real SQLite files: the chain, immutability, receipts, the pinned hub."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
import stat
from pathlib import Path

import pytest

from client.errors import (
    AlreadyInitialisedError,
    HubPinError,
    IdentityError,
    NotInitialisedError,
    ReceiptError,
    StoreDamagedError,
    StoreError,
)
from client.store import DB_FILE, SCHEMA_VERSION, ClientStore, Marks
from hub.protocol import entry, receipt, record
from hub.protocol.errors import SchemaError
from hub.protocol.identity import Identity, fingerprint
from hub.shared import keyfile

from .conftest import body, make_form

NOW = 1_700_000_000


async def new_store(data_dir: Path, name: str = "Meja 1") -> ClientStore:
    store, created = await ClientStore.create(data_dir, name, now=NOW)
    assert created
    return store


def db(data_dir: Path) -> contextlib.closing[sqlite3.Connection]:
    return contextlib.closing(sqlite3.connect(data_dir / DB_FILE, isolation_level=None))


async def test_create_makes_private_dir_key_and_db(data_dir: Path) -> None:
    async with await new_store(data_dir) as store:
        assert store.name == "Meja 1"
        assert store.node_id == fingerprint(store.identity.public)
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / "node.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((data_dir / DB_FILE).stat().st_mode) == 0o600
    with db(data_dir) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_create_again_same_name_is_idempotent_other_name_refused(data_dir: Path) -> None:
    async with await new_store(data_dir) as store:
        node_id = store.node_id
    again, created = await ClientStore.create(data_dir, "Meja 1", now=NOW + 5)
    async with again:
        assert not created
        assert again.node_id == node_id
    with pytest.raises(AlreadyInitialisedError) as exc:
        await ClientStore.create(data_dir, "Meja 2", now=NOW)
    assert "Meja 1" in exc.value.message and node_id in exc.value.message


async def test_open_uninitialised_does_not_create_anything(data_dir: Path) -> None:
    with pytest.raises(NotInitialisedError) as exc:
        await ClientStore.open(data_dir)
    assert "c1client init" in exc.value.message
    assert not data_dir.exists()


async def test_store_without_its_key_is_refused(data_dir: Path) -> None:
    async with await new_store(data_dir) as store:
        await store.append([body(make_form())])
    (data_dir / "node.key").unlink()
    with pytest.raises(IdentityError):
        await ClientStore.open(data_dir)
    with pytest.raises(IdentityError):
        await ClientStore.create(data_dir, "Meja 1", now=NOW)
    assert not (data_dir / "node.key").exists()  # no new key was made behind the store's back
    keyfile.save(Identity.generate(), data_dir / "node.key")
    with pytest.raises(IdentityError, match="not the key"):
        await ClientStore.open(data_dir)


async def test_append_chains_records_and_keeps_exact_bytes(data_dir: Path) -> None:
    async with await new_store(data_dir) as store:
        first = await store.append([body(make_form(1)), body(make_form(2))])
        second = await store.append([body(make_form(3))])
        recs = first + second
        assert [r.seq for r in recs] == [1, 2, 3]
        assert recs[0].prev == record.GENESIS
        assert recs[1].prev == recs[0].hash and recs[2].prev == recs[1].hash
        assert await store.head() == (3, recs[2].hash)
        for r in recs:
            held = await store.get(r.seq)
            assert held is not None
            assert held.raw == r.raw and held.hash == hashlib.sha256(r.raw).digest()
            decoded = record.decode(held.raw)
            decoded.verify()
            assert decoded.origin == store.identity.public
        assert await store.hash_at(2) == recs[1].hash
        assert await store.hash_at(4) is None
        assert await store.last_seq() == 3


async def test_append_refuses_invalid_body_and_writes_nothing(data_dir: Path) -> None:
    async with await new_store(data_dir) as store:
        good = body(make_form(1))
        with pytest.raises(SchemaError):
            await store.append([good, b"\x81\xa1a\x01"])  # {"a": 1}: not an entry
        assert await store.last_seq() == 0


async def test_columns_are_derived_from_the_body(data_dir: Path) -> None:
    flagged = make_form(2, sah=1)  # R3 and R5
    async with await new_store(data_dir) as store:
        await store.append([body(make_form(1, form="DPD")), body(flagged, entered_at=NOW + 7)])
        e1, e2 = [e async for e in store.entries()]
        assert (e1.form, e1.flags) == ("DPD", ())
        assert e2.flags == ("R3", "R5")
        assert e2.entered_at == NOW + 7 and e2.tps == "9901010001001"
        assert e2.election == "pemilu-2024"
        s = await store.summary()
        assert (s.entries, s.last_seq, s.flagged) == (2, 2, 1)


async def test_entries_are_immutable_in_the_database(data_dir: Path) -> None:
    async with await new_store(data_dir) as store:
        await store.append([body(make_form())])
    with db(data_dir) as c:
        with pytest.raises(sqlite3.IntegrityError, match="immutable"):
            c.execute("UPDATE entries SET tps = '9901010001002' WHERE seq = 1")
        with pytest.raises(sqlite3.IntegrityError, match="immutable"):
            c.execute("DELETE FROM entries WHERE seq = 1")


async def test_concurrent_appends_one_store_stay_contiguous(data_dir: Path) -> None:
    async with await new_store(data_dir) as store:
        bodies = [body(make_form(i)) for i in range(40)]
        await asyncio.gather(*(store.append(bodies[i : i + 4]) for i in range(0, 40, 4)))
        report = await store.verify()
        assert report.ok, report.problems
        assert report.checked == 40


async def test_two_connections_on_one_dir_serialise(data_dir: Path) -> None:
    a = await new_store(data_dir)
    b = await ClientStore.open(data_dir)
    async with a, b:
        bodies = [body(make_form(i)) for i in range(30)]
        await asyncio.gather(
            *(
                (a if i % 2 else b).append(bodies[i * 3 : i * 3 + 3])
                for i in range(10)  # interleaved transactions from two connections
            )
        )
        seqs = [e.seq async for e in a.entries()]
        assert seqs == list(range(1, 31))
        assert (await b.verify()).ok


async def test_records_after_streams_in_order(data_dir: Path) -> None:
    async with await new_store(data_dir) as store:
        recs = await store.append([body(make_form(i)) for i in range(7)])
        assert await store.records_after(0, 3) == [r.raw for r in recs[:3]]
        assert await store.records_after(3, 100) == [r.raw for r in recs[3:]]
        assert await store.records_after(7, 100) == []
        assert [e.seq async for e in store.entries(after=2, page=2)] == [3, 4, 5, 6, 7]


async def test_receipts_drive_derived_state(data_dir: Path) -> None:
    hub = Identity.generate()
    up = Identity.generate()
    async with await new_store(data_dir) as store:
        recs = await store.append([body(make_form(i)) for i in range(5)])
        await store.pin_hub(hub.public, hub.node_id, "http://127.0.0.1:8470", NOW)
        me = store.identity.public
        r3 = receipt.issue(hub, me, 3, recs[2].hash, NOW)
        assert await store.add_receipt("hub", r3, NOW)
        assert not await store.add_receipt("hub", r3, NOW)  # already held
        assert await store.add_receipt("upstream", receipt.issue(up, me, 1, recs[0].hash, NOW))
        assert await store.highest_receipt("hub") == 3
        assert await store.highest_receipt("upstream") == 1
        marks = await store.marks()
        states = [marks.state(e.seq) async for e in store.entries()]
        assert states == ["confirmed", "at_hub", "at_hub", "local", "local"]
        s = await store.summary()
        assert (s.confirmed_upstream, s.at_hub, s.local_only) == (1, 3, 2)
        assert s.hub is not None and s.hub.node_id == hub.node_id
        assert (await store.verify()).ok


async def test_bad_receipts_are_refused(data_dir: Path) -> None:
    hub = Identity.generate()
    async with await new_store(data_dir) as store:
        recs = await store.append([body(make_form(i)) for i in range(2)])
        await store.pin_hub(hub.public, hub.node_id, "http://127.0.0.1:8470", NOW)
        me = store.identity.public
        with pytest.raises(ReceiptError, match="different entry"):
            await store.add_receipt("hub", receipt.issue(hub, me, 2, recs[0].hash, NOW))
        with pytest.raises(ReceiptError, match="no entry 3"):
            await store.add_receipt("hub", receipt.issue(hub, me, 3, recs[0].hash, NOW))
        other = Identity.generate()
        with pytest.raises(ReceiptError, match="not by the pinned hub"):
            await store.add_receipt("hub", receipt.issue(other, me, 1, recs[0].hash, NOW))
        with pytest.raises(ReceiptError, match="another laptop"):
            await store.add_receipt("hub", receipt.issue(hub, other.public, 1, recs[0].hash, NOW))
        good = receipt.issue(hub, me, 1, recs[0].hash, NOW)
        forged = receipt.Receipt(
            hub.public, me, 1, recs[0].hash, NOW, good.raw[:-1] + bytes([good.raw[-1] ^ 1])
        )
        with pytest.raises(ReceiptError, match="does not verify"):
            await store.add_receipt("hub", forged)
        assert await store.highest_receipt("hub") == 0


async def test_pinning_a_hub(data_dir: Path) -> None:
    hub, other = Identity.generate(), Identity.generate()
    async with await new_store(data_dir) as store:
        assert await store.pinned_hub() is None
        with pytest.raises(HubPinError):
            await store.set_hub_url("http://127.0.0.1:1", NOW)
        with pytest.raises(HubPinError):
            await store.pin_hub(hub.public, other.node_id, "http://127.0.0.1:1", NOW)
        await store.pin_hub(hub.public, hub.node_id, "http://127.0.0.1:1", NOW)
        await store.pin_hub(hub.public, hub.node_id, "http://127.0.0.1:2", NOW + 1)
        assert await store.pinned_hub() == (hub.public, hub.node_id, "http://127.0.0.1:2")
        await store.set_hub_url("http://127.0.0.1:3", NOW + 2)
        info = await store.hub_info()
        assert info is not None
        assert (info.url, info.last_ok_at, info.pinned_at) == ("http://127.0.0.1:3", NOW + 2, NOW)
        with pytest.raises(HubPinError, match=hub.node_id):
            await store.pin_hub(other.public, other.node_id, "http://127.0.0.1:4", NOW)
        await store.pin_hub(other.public, other.node_id, "http://127.0.0.1:4", NOW, replace=True)
        assert await store.pinned_hub() == (other.public, other.node_id, "http://127.0.0.1:4")
    with db(data_dir) as c:
        assert c.execute("SELECT count(*) FROM hubs WHERE pinned_at IS NOT NULL").fetchone() == (1,)


async def seeded(data_dir: Path, n: int = 5) -> list[record.Record]:
    async with await new_store(data_dir) as store:
        forms = [make_form(i) for i in range(n)]
        if n > 2:
            forms[2]["sah"] = 1  # entry 3 carries flags R3 and R5
        recs = await store.append([body(f) for f in forms])
        assert (await store.verify()).ok
    return recs


def tamper(data_dir: Path, *sql: tuple[str, tuple[object, ...]]) -> None:
    with db(data_dir) as c:
        c.execute("DROP TRIGGER entries_no_update")
        c.execute("DROP TRIGGER entries_no_delete")
        for stmt, params in sql:
            c.execute(stmt, params)


async def problems(data_dir: Path) -> list[tuple[int | None, str]]:
    async with await ClientStore.open(data_dir) as store:
        report = await store.verify()
    return [(p.seq, p.code) for p in report.problems]


@pytest.mark.parametrize("where", [0, 40, 150, -30, -1])
async def test_verify_catches_one_flipped_byte(data_dir: Path, where: int) -> None:
    recs = await seeded(data_dir)
    raw = bytearray(recs[2].raw)
    raw[where] ^= 0x01
    tamper(data_dir, ("UPDATE entries SET raw = ? WHERE seq = 3", (bytes(raw),)))
    found = await problems(data_dir)
    assert found and all(seq in (3, 4, None) for seq, _ in found)
    assert (3, "hash_column") in found


async def test_verify_catches_a_changed_column(data_dir: Path) -> None:
    await seeded(data_dir)
    tamper(data_dir, ("UPDATE entries SET tps = '9901010001999' WHERE seq = 2", ()))
    assert await problems(data_dir) == [(2, "column")]


async def test_verify_catches_changed_flags(data_dir: Path) -> None:
    await seeded(data_dir)
    tamper(data_dir, ("UPDATE entries SET flags = '' WHERE seq = 3", ()))  # hide R3/R5
    assert await problems(data_dir) == [(3, "column")]


async def test_verify_catches_a_deleted_row(data_dir: Path) -> None:
    await seeded(data_dir)
    tamper(data_dir, ("DELETE FROM entries WHERE seq = 3", ()))
    assert await problems(data_dir) == [(3, "seq_gap")]


async def test_verify_catches_a_deleted_last_row_and_append_refuses(data_dir: Path) -> None:
    await seeded(data_dir)
    tamper(data_dir, ("DELETE FROM entries WHERE seq = 5", ()))
    assert await problems(data_dir) == [(5, "head")]
    async with await ClientStore.open(data_dir) as store:
        with pytest.raises(StoreDamagedError):
            await store.append([body(make_form(9))])
        assert await store.last_seq() == 4


async def test_verify_catches_swapped_rows(data_dir: Path) -> None:
    recs = await seeded(data_dir)
    tamper(
        data_dir,
        ("UPDATE entries SET raw = ? WHERE seq = 2", (recs[3].raw,)),
        ("UPDATE entries SET raw = ? WHERE seq = 4", (recs[1].raw,)),
    )
    found = await problems(data_dir)
    assert (2, "seq_mismatch") in found and (4, "seq_mismatch") in found
    assert {seq for seq, _ in found} <= {2, 3, 4, 5}


async def test_verify_catches_a_foreign_record(data_dir: Path, tmp_path: Path) -> None:
    await seeded(data_dir, 2)
    stranger = Identity.generate()
    async with await ClientStore.open(data_dir) as store:
        prev = await store.hash_at(2)
    assert prev is not None
    b = body(make_form(7))
    rec = record.make(stranger, 3, prev, b)
    with db(data_dir) as c:
        c.execute(
            "INSERT INTO entries VALUES (3, ?, ?, 'pemilu-2024', 'PPWP', '9901010001001', '', ?)",
            (rec.hash, rec.raw, entry.decode_body(b)["entered_at"]),
        )
    found = await problems(data_dir)
    assert (3, "wrong_origin") in found and (3, "bad_signature") not in found


async def test_future_schema_is_refused(data_dir: Path) -> None:
    await seeded(data_dir, 1)
    with db(data_dir) as c:
        c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer c1client"):
        await ClientStore.open(data_dir)


async def test_readers_never_see_an_uncommitted_append(data_dir: Path) -> None:
    """Readers see committed data only: while an append's transaction is open (held there
    by the database's fault-injection hook) every read of the store's public API shows the
    log without it; then the COMMIT fails, and nothing of it is ever visible."""
    hub = Identity.generate()
    async with await new_store(data_dir) as store:
        (first,) = await store.append([body(make_form(1))])
        await store.pin_hub(hub.public, hub.node_id, "http://127.0.0.1:8470", NOW)
        await store.add_receipt(
            "hub", receipt.issue(hub, store.identity.public, 1, first.hash, NOW)
        )
        seen: dict[str, object] = {}

        async def read_everything(s: ClientStore) -> dict[str, object]:
            summary = await s.summary()
            return {
                "head": await s.head(),
                "last": await s.last_seq(),
                "hash_at_2": await s.hash_at(2),
                "get_2": await s.get(2),
                "entries": [e.seq async for e in s.entries()],
                "records_after": await s.records_after(1, 10),
                "same": await s.same_entries([entry.parse(make_form(2))]),
                "summary": (summary.entries, summary.last_seq, summary.local_only),
                "verify": (await s.verify()).checked,
                "marks": await s.marks(),
            }

        async def commit_fails() -> None:
            seen["here"] = await read_everything(store)
            async with await ClientStore.open(data_dir) as other:  # another connection
                seen["other"] = await read_everything(other)
            raise sqlite3.OperationalError("disk I/O error")  # the COMMIT does not happen

        store._db.before_commit = commit_fails
        with pytest.raises(StoreError, match="could not save: disk I/O error"):
            await store.append([body(make_form(2)), body(make_form(3))])
        store._db.before_commit = None
        want = {
            "head": (1, first.hash),
            "last": 1,
            "hash_at_2": None,
            "get_2": None,
            "entries": [1],
            "records_after": [],
            "same": [None],
            "summary": (1, 1, 0),
            "verify": 1,
            "marks": Marks(hub=1, upstream=0),
        }
        assert seen == {"here": want, "other": want}
        assert await read_everything(store) == want
        assert (await store.verify()).ok
        (second,) = await store.append([body(make_form(2))])  # the chain goes on from seq 1
        assert (second.seq, second.prev) == (2, first.hash)


async def test_a_store_at_schema_1_is_migrated_and_keeps_its_log(data_dir: Path) -> None:
    """A client.db written by an older c1client (schema 1, no hub state) opens and migrates."""
    from client.db import MIGRATIONS

    async with await new_store(data_dir) as store:
        recs = await store.append([body(make_form(i)) for i in range(3)])
        node_id = store.node_id
    with db(data_dir) as c:  # back to what schema 1 looked like
        c.execute("PRAGMA journal_mode = DELETE")
        c.execute("ALTER TABLE hubs DROP COLUMN state")
        c.execute("ALTER TABLE hubs DROP COLUMN code")
        c.execute("DROP TABLE scans")
        c.execute("DELETE FROM meta WHERE key = 'scans_seq'")
        c.execute("PRAGMA user_version = 1")
    assert len(MIGRATIONS) == SCHEMA_VERSION == 3
    async with await ClientStore.open(data_dir) as store:
        assert store.node_id == node_id and await store.head() == (3, recs[-1].hash)
        assert (await store.verify()).ok
    with db(data_dir) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert {"state", "code"} <= {r[1] for r in c.execute("PRAGMA table_info(hubs)")}
        assert {"hash", "seq", "state"} <= {r[1] for r in c.execute("PRAGMA table_info(scans)")}
        with pytest.raises(sqlite3.IntegrityError, match="immutable"):
            c.execute("DELETE FROM entries WHERE seq = 1")
