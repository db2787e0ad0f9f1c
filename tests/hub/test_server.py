"""The hub's HTTP API, served in-process (pytest-aiohttp) from a hub service over a real SQLite
store; the process around it (lock, sockets) in the last tests."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hub.config import HubConfig
from hub.errors import AlreadyRunning
from hub.examine import make_pool
from hub.node import Hub, init_data_dir
from hub.protocol import codec, enroll, entry, receipt, record, worklist
from hub.protocol.identity import Identity
from hub.protocol.quota import Quotas
from hub.render import status_text
from tests.helpers import chain, forms

from .conftest import HUB_KEY, TOKEN, Served


async def test_push_stores_and_receipt_is_signed(hub: Served) -> None:
    laptop = Identity.generate()
    await hub.enrolled(laptop, approve=True)
    recs = chain(laptop, forms(30))
    status, reply = await hub.push([r.raw for r in recs])
    assert status == 200
    assert reply["accepted"] == 30 and reply["rejected"] == [] and reply["duplicate"] == 0
    (rc_raw,) = reply["receipts"]
    rc = receipt.decode(rc_raw)
    rc.check(hub.ident.public)
    assert (rc.origin, rc.seq, rc.hash) == (laptop.public, 30, recs[-1].hash)
    assert reply["origins"] == [
        {"public": laptop.public, "id": laptop.node_id, "state": "approved", "forked": 0,
         "seq": 30}
    ]  # fmt: skip
    s = hub.service.status_now()
    assert s["entries"] == {"accepted": 30, "held": 0, "total": 30}
    assert s["tps"]["single"] == 30


async def test_replayed_batch_is_a_noop(hub: Served) -> None:
    laptop = Identity.generate()
    await hub.enrolled(laptop, approve=True)
    raws = [r.raw for r in chain(laptop, forms(10))]
    await hub.push(raws)
    status, reply = await hub.push(raws)
    assert status == 200 and reply["accepted"] == 0 and reply["duplicate"] == 10
    assert hub.service.status_now()["entries"]["accepted"] == 10
    assert receipt.decode(reply["receipts"][0]).seq == 10


async def test_unknown_laptop_is_held_then_counted_after_approval(hub: Served) -> None:
    laptop = Identity.generate()  # never enrolled
    status, reply = await hub.push([r.raw for r in chain(laptop, forms(5))])
    assert status == 200 and reply["accepted"] == 5
    assert reply["origins"][0]["state"] == "pending"
    s = hub.service.status_now()
    assert s["entries"] == {"accepted": 0, "held": 5, "total": 5}
    assert s["devices"]["pending"] == 1
    await hub.service.approve(laptop.node_id)
    assert hub.service.status_now()["entries"]["accepted"] == 5


async def test_forged_signature_rejected_and_nothing_harmed(hub: Served) -> None:
    laptop = Identity.generate()
    await hub.enrolled(laptop, approve=True)
    recs = chain(laptop, forms(4))
    await hub.push([r.raw for r in recs[:3]])
    # Seq 4 re-signed by an impostor key but claiming the laptop's origin.
    impostor = Identity.generate()
    fake = record.make(impostor, 4, recs[2].hash, recs[3].body)
    forged = codec.pack([1, laptop.public, 4, recs[2].hash, recs[3].body, fake.sig])
    status, reply = await hub.push([forged])
    assert status == 200 and reply["accepted"] == 0
    assert reply["rejected"][0]["code"] == "bad_signature"
    # A changed body byte under the original signature is also caught.
    body = bytearray(recs[3].body)
    body[-3] ^= 1
    altered = codec.pack([1, laptop.public, 4, recs[2].hash, bytes(body), recs[3].sig])
    status, reply = await hub.push([altered])
    assert reply["rejected"][0]["code"] in ("bad_signature", "bad_entry", "bad_encoding")
    assert hub.service.status_now()["entries"]["accepted"] == 3
    status, reply = await hub.push([recs[3].raw])
    assert reply["accepted"] == 1


async def test_gap_rejected_with_next_seq(hub: Served) -> None:
    laptop = Identity.generate()
    recs = chain(laptop, forms(5))
    _status, reply = await hub.push([recs[0].raw, recs[3].raw, recs[4].raw])
    assert reply["accepted"] == 1
    codes = {r["seq"]: r["code"] for r in reply["rejected"]}
    assert codes == {4: "out_of_order", 5: "out_of_order"}
    assert "send seq 2 first" in reply["rejected"][0]["reason"]


async def test_tampered_prev_is_a_fork_and_origin_is_stopped(hub: Served) -> None:
    laptop = Identity.generate()
    await hub.enrolled(laptop, approve=True)
    recs = chain(laptop, forms(3))
    await hub.push([r.raw for r in recs[:2]])
    bad = record.make(laptop, 3, hashlib.sha256(b"other history").digest(), recs[2].body)
    _status, reply = await hub.push([bad.raw])
    assert reply["forks"][0]["code"] == "fork"
    assert reply["origins"][0]["forked"] == 1
    s = hub.service.status_now()
    assert s["forks"] == 1 and s["entries"]["held"] == 2
    _status, reply = await hub.push([recs[2].raw])
    assert reply["rejected"][0]["code"] == "origin_forked"
    async with hub.http.get("/v1/forks") as r:
        evidence = await r.json()
    assert evidence[0]["seq"] == 3 and evidence[0]["evidence"] == bad.raw.hex()
    assert evidence[0]["device"] == laptop.node_id and evidence[0]["held"] is None
    # ... and it cannot be approved again, over HTTP or not.
    url = f"/v1/devices/{laptop.node_id}/approve"
    async with hub.http.post(url, headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        assert r.status == 403 and (await r.json())["error"]["code"] == "device"


async def test_same_seq_different_bytes_is_a_fork_both_kept(hub: Served) -> None:
    laptop = Identity.generate()
    await hub.enrolled(laptop, approve=True)
    a = chain(laptop, forms(3, seed=1))
    b = chain(laptop, forms(3, seed=2), start=3, prev=a[1].hash)  # copy enters a different seq 3
    await hub.push([r.raw for r in a])
    _status, reply = await hub.push([b[0].raw])
    assert len(reply["forks"]) == 1
    forks = await hub.service.forks()
    assert forks[0]["evidence"] == b[0].raw.hex() and forks[0]["held"] == a[2].raw.hex()


async def test_revoked_laptop_refused_after_revocation(hub: Served) -> None:
    laptop = Identity.generate()
    await hub.enrolled(laptop, approve=True)
    recs = chain(laptop, forms(6))
    await hub.push([r.raw for r in recs[:4]])
    await hub.service.revoke(laptop.node_id)
    _status, reply = await hub.push([r.raw for r in recs])
    assert reply["duplicate"] == 4 and reply["accepted"] == 0
    assert {r["code"] for r in reply["rejected"]} == {"device_revoked"}
    s = hub.service.status_now()
    assert s["entries"]["accepted"] == 4 and s["devices"]["revoked"] == 1


@pytest.mark.parametrize(
    ("body", "ctype", "code", "status"),
    [
        (b"\xc1\xc1\xc1", "application/msgpack", "bad_encoding", 400),
        (b"", "application/msgpack", "bad_encoding", 400),
        (codec.pack({"records": "nope"}), "application/msgpack", "bad_encoding", 400),
        (codec.pack({"records": [1, 2]}), "application/msgpack", "bad_encoding", 400),
        (codec.pack([1, 2, 3]), "application/msgpack", "bad_encoding", 400),
        (b'{"records": []}', "application/json", "bad_encoding", 400),
        (codec.pack({"records": [b"x"]})[:-1], "application/msgpack", "bad_encoding", 400),
    ],
)
async def test_garbage_body_gets_4xx_with_reason(
    hub: Served, body: bytes, ctype: str, code: str, status: int
) -> None:
    got, reply = await hub.post("/v1/push", body, ctype)
    assert got == status
    assert reply["error"]["code"] == code and reply["error"]["reason"]
    async with hub.http.get("/v1/hello") as r:  # still serving
        assert r.status == 200


async def test_garbage_record_inside_a_batch_is_rejected_alone(hub: Served) -> None:
    laptop = Identity.generate()
    recs = chain(laptop, forms(2))
    status, reply = await hub.push([recs[0].raw, b"\x93\x01\x02", recs[1].raw])
    assert status == 200 and reply["accepted"] == 2
    assert reply["rejected"] == [
        {
            "index": 1,
            "decision": "reject",
            "code": "bad_encoding",
            "reason": reply["rejected"][0]["reason"],
        }
    ]


async def test_oversized_body_and_batch(serve: Callable[..., Awaitable[Served]]) -> None:
    h = await serve(max_body=64 * 1024, max_batch=10)
    laptop = Identity.generate()
    status, reply = await h.push([r.raw for r in chain(laptop, forms(11))])
    assert status == 413 and reply["error"]["code"] == "too_large"
    assert "over the limit of 10" in reply["error"]["reason"]
    status, reply = await h.post("/v1/push", b"\x00" * (65 * 1024))
    assert status == 413 and reply["error"]["code"] == "too_large"
    assert "65536 bytes" in reply["error"]["reason"]
    status, reply = await h.push([r.raw for r in chain(laptop, forms(3))])
    assert status == 200 and reply["accepted"] == 3


async def test_forged_enrollment_refused(hub: Served) -> None:
    laptop, other = Identity.generate(), Identity.generate()
    raw = enroll.make_request(laptop, hub.ident.public, "L", "laptop", 1)
    payload, _sig = codec.unpack(raw)
    forged = codec.pack([payload, other.sign(enroll.ENROLL_DOMAIN, payload)])
    status, reply = await hub.post("/v1/enroll", forged)
    assert status == 400 and reply["error"]["code"] == "bad_signature"
    elsewhere = enroll.make_request(laptop, Identity.generate().public, "L", "laptop", 1)
    status, reply = await hub.post("/v1/enroll", elsewhere)
    assert status == 400 and "another hub" in reply["error"]["reason"]
    assert hub.store.devices == {}


async def test_admin_needs_token(hub: Served) -> None:
    laptop = Identity.generate()
    await hub.enrolled(laptop, approve=False)
    url = f"/v1/devices/{laptop.node_id}/approve"
    async with hub.http.post(url) as r:
        assert r.status == 401
    async with hub.http.post(url, headers={"Authorization": "Bearer wrong"}) as r:
        assert r.status == 401
    async with hub.http.post(url, headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        assert r.status == 200 and (await r.json())["state"] == "approved"
    async with hub.http.post(
        "/v1/devices/NOPE-NOPE-NOPE/revoke", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as r:
        assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"


async def test_hello_proves_the_key_and_vouches_for_upstream(
    serve: Callable[..., Awaitable[Served]],
) -> None:
    class Upstream:
        upstream_public = Identity.from_seed(b"u" * 32).public

        def status(self) -> dict[str, Any]:
            return {"state": "up"}

    h = await serve(upstream=Upstream())
    nonce = b"n" * enroll.NONCE_LEN
    async with h.http.get(f"/v1/hello?nonce={nonce.hex()}") as r:
        hello = codec.unpack(await r.read(), canonical=False)
    assert hello["node_id"] == HUB_KEY.node_id and hello["role"] == "hub"
    enroll.check_proof(hello["public"], nonce, hello["proof"])
    assert hello["upstream"] == Upstream.upstream_public
    receipt.check_upstream(HUB_KEY.public, hello["upstream"], hello["upstream_sig"])
    async with h.http.get("/v1/hello?nonce=zz") as r:
        assert r.status == 400


async def test_concurrent_pushes_from_many_laptops(hub: Served) -> None:
    laptops = [Identity.generate() for _ in range(8)]
    chains = [chain(lp, forms(40, seed=i)) for i, lp in enumerate(laptops)]

    async def run(recs: list[record.Record]) -> None:
        for i in range(0, len(recs), 7):
            status, reply = await hub.push([r.raw for r in recs[i : i + 7]])
            assert status == 200 and not reply["rejected"]

    await asyncio.gather(*(run(c) for c in chains))
    assert hub.service.status_now()["entries"]["total"] == 8 * 40
    for lp in laptops:
        assert hub.store.head_of(lp.public).seq == 40


async def test_heads_give_the_version_vector_with_receipts(hub: Served) -> None:
    laptop, other = Identity.generate(), Identity.generate()
    recs = chain(laptop, forms(3))
    await hub.push([r.raw for r in recs])
    status, reply = await hub.post(
        "/v1/heads", codec.pack({"origins": [laptop.public, other.public]})
    )
    assert status == 200
    assert reply["heads"] == [[laptop.public, 3, recs[-1].hash], [other.public, 0, record.GENESIS]]
    (rc,) = [receipt.decode(x) for x in reply["receipts"]]
    assert (rc.origin, rc.seq) == (laptop.public, 3)
    async with hub.http.get(f"/v1/heads/{laptop.public.hex()}") as r:
        one = codec.unpack(await r.read(), canonical=False)
    assert (one["seq"], one["state"], one["forked"]) == (3, "pending", 0)
    assert "confirmed" not in one
    status, reply = await hub.post("/v1/heads", codec.pack({"origins": [b"short"]}))
    assert status == 400


async def test_restart_keeps_everything(serve: Callable[..., Awaitable[Served]]) -> None:
    laptop = Identity.generate()
    recs = chain(laptop, forms(20))
    first = await serve("r")
    await first.push([r.raw for r in recs[:12]])
    await first.store.close()
    again = await serve("r")
    assert again.store.head_of(laptop.public).seq == 12
    _status, reply = await again.push([r.raw for r in recs])
    assert reply["duplicate"] == 12 and reply["accepted"] == 8


async def test_large_batch_checked_by_worker_processes_with_master(
    serve: Callable[..., Awaitable[Served]], wilayah_path: Path
) -> None:
    """A batch big enough to go to the examine workers: they recompute flags themselves,
    with their own copy of the master (synthetic TPS codes are not in it: R11)."""
    with make_pool(wilayah_path) as pool:
        h = await serve(pool=pool)
        laptop = Identity.generate()
        await h.enrolled(laptop, approve=True)
        recs = chain(laptop, forms(600))
        status, reply = await h.push([r.raw for r in recs])
        assert status == 200 and reply["accepted"] == 600
        assert h.service.status_now()["flags"].get("R11") == 600
        assert receipt.decode(reply["receipts"][0]).seq == 600


async def test_dashboard_shows_what_needs_attention(hub: Served) -> None:
    laptop = Identity.generate()
    await hub.enrolled(laptop, approve=False)
    await hub.push([r.raw for r in chain(laptop, forms(3))])
    code = hub.service.status_now()["device_list"][0]["code"]
    async with hub.http.get("/") as r:
        assert r.status == 200 and r.content_type == "text/html"
        page = await r.text()
    assert "menunggu persetujuan" in page and code in page and laptop.node_id in page
    assert '<b data-count="held">3</b><span>Entri ditahan' in page
    assert f'data-device-id="{laptop.node_id}" data-state="pending"' in page
    async with hub.http.get("/?lang=en") as r:
        page = await r.text()
    assert "waiting for approval" in page and '<b data-count="held">3</b><span>Entries held' in page


async def test_status_and_devices_are_json(hub: Served) -> None:
    laptop = Identity.generate()
    await hub.enrolled(laptop, approve=False)
    async with hub.http.get("/v1/devices") as r:
        (row,) = await r.json()
    assert (row["id"], row["state"], row["entries"]) == (laptop.node_id, "pending", 0)
    async with hub.http.get("/v1/status") as r:
        s = await r.json()
    assert s["device_list"] == [row] and s["upstream"]["state"] == "none"


async def test_metrics_are_prometheus_text(hub: Served) -> None:
    laptop = Identity.generate()
    await hub.push([r.raw for r in chain(laptop, forms(4))])
    async with hub.http.get("/metrics") as r:
        text = await r.text()
    assert "c1hub_records_stored 4\n" in text
    assert 'c1hub_devices{state="pending"} 1\n' in text
    assert "c1hub_pushes 1\n" in text and "upstream" not in text


async def test_forks_of_unapproved_keys_are_shown_apart(hub: Served) -> None:
    """A fork of a key nobody approved: evidence in /metrics, the dashboard and the status,
    but not the room's fork alarm."""
    stranger = Identity.generate()
    recs = chain(stranger, forms(2))
    other = chain(stranger, forms(1, seed=9), start=2, prev=recs[0].hash)
    await hub.push([r.raw for r in recs])
    _status, reply = await hub.push([other[0].raw])
    assert len(reply["forks"]) == 1
    async with hub.http.get("/metrics") as r:
        text = await r.text()
    assert "c1hub_forks 0\n" in text and "c1hub_forks_unapproved 1\n" in text
    assert "c1hub_held_records 2\n" in text
    held_bytes = sum(len(r.raw) for r in recs)
    assert f"c1hub_held_bytes {held_bytes}\n" in text
    async with hub.http.get("/?lang=en") as r:
        page = await r.text()
    assert "ATTENTION" not in page and "1 fork(s) of keys never approved" in page
    assert '<b data-count="forks_unapproved">1</b><span>Forks of unapproved keys' in page
    s = hub.service.status_now()
    assert (s["forks"], s["forks_unapproved"]) == (0, 1)
    assert "FORKS" not in status_text(s) and "forks of keys never approved: 1" in status_text(s)


async def test_an_enrollment_over_the_pending_quota_is_429_quota(
    serve: Callable[..., Awaitable[Served]],
) -> None:
    h = await serve(quotas=Quotas(pending_devices=1))
    raws = [enroll.make_request(Identity.generate(), h.ident.public, "L", "laptop", 1)
            for _ in range(2)]  # fmt: skip
    assert (await h.post("/v1/enroll", raws[0]))[0] == 200
    status, reply = await h.post("/v1/enroll", raws[1])
    assert status == 429 and reply["error"]["code"] == "quota"
    assert "max_pending_devices" in reply["error"]["reason"]
    assert len(h.store.devices) == 1


async def test_approved_laptop_cannot_make_itself_a_hub_and_vouch(hub: Served) -> None:
    laptop = Identity.generate()
    await hub.enrolled(laptop, approve=True)
    status, reply = await hub.post(
        "/v1/enroll", enroll.make_request(laptop, hub.ident.public, "L", "hub", 2)
    )
    assert status == 409 and reply["error"]["code"] == "role_change"
    assert hub.store.devices[laptop.public].role == "laptop"
    # It signs an endorsement for a key of its own making and pushes that key's entries.
    sock = Identity.generate()
    endorsement = enroll.endorse(laptop, sock.public, "sock", "laptop", 3)
    body = codec.pack({"records": [r.raw for r in chain(sock, forms(3))],
                       "endorsements": [endorsement]})  # fmt: skip
    status, reply = await hub.post("/v1/push", body)
    assert status == 200 and reply["origins"][0]["state"] == "pending"
    s = hub.service.status_now()
    assert s["entries"] == {"accepted": 0, "held": 3, "total": 3}


async def test_group_commit_takes_concurrent_pushes_together(hub: Served) -> None:
    laptops = [Identity.generate() for _ in range(6)]
    recs = [chain(lp, forms(5, seed=i + 20)) for i, lp in enumerate(laptops)]
    before = hub.store.commits
    replies = await asyncio.gather(*(hub.push([r.raw for r in c]) for c in recs))
    assert all(st == 200 and rep["accepted"] == 5 for st, rep in replies)
    assert hub.store.commits - before < len(laptops)  # several pushes shared a commit


async def test_a_failed_commit_is_a_503_and_the_batch_can_be_sent_again(hub: Served) -> None:
    import sqlite3

    laptop = Identity.generate()
    raws = [r.raw for r in chain(laptop, forms(3))]

    async def disk_full() -> None:
        hub.store.db.before_commit = None
        raise sqlite3.OperationalError("database or disk is full")

    hub.store.db.before_commit = disk_full
    status, reply = await hub.push(raws)
    assert status == 503 and reply["error"]["code"] == "unavailable"
    assert "Send it again" in reply["error"]["reason"]
    status, reply = await hub.push(raws)
    assert status == 200 and reply["accepted"] == 3


# -- the process around the service -----------------------------------------------------------


async def test_a_hub_process_serves_and_a_second_one_on_its_folder_refuses(
    tmp_path: Path,
) -> None:
    init_data_dir(tmp_path / "hub", "Test Hub")
    cfg = HubConfig(data_dir=tmp_path / "hub", host="127.0.0.1", port=0, mdns=False)
    async with Hub(cfg) as hub, aiohttp.ClientSession() as http:
        assert hub.url is not None and (tmp_path / "hub" / "hub.json").exists()
        async with http.get(hub.url + "/v1/hello") as r:
            hello = codec.unpack(await r.read(), canonical=False)
        assert hello["node_id"] == hub.ident.node_id and hello["name"] == "Test Hub"
        other = Hub(HubConfig(data_dir=hub.data_dir, host="127.0.0.1", port=0, mdns=False))
        with pytest.raises(AlreadyRunning, match="already serving"):
            await other.start()
    assert not (tmp_path / "hub" / "hub.json").exists()
    # Stopped, the folder is free again (the lock and the port were released).
    async with Hub(cfg) as again:
        assert again.service.store.records_stored == 0


# -- the double-entry work list ---------------------------------------------------------


async def get_work(hub: Served, query: str) -> tuple[int, Any]:
    async with hub.http.get("/v1/work" + query) as r:
        assert r.content_type == "application/msgpack"
        return r.status, codec.unpack(await r.read(), canonical=False)


async def test_work_list_over_http(hub: Served) -> None:
    a, b, pending = Identity.generate(), Identity.generate(), Identity.generate()
    fs = forms(3)
    other = dict(fs[2], sah=fs[2]["sah"] + 1)
    await hub.enrolled(a, approve=True)
    await hub.enrolled(b, approve=True)
    await hub.enrolled(pending, approve=False)
    await hub.push([r.raw for r in chain(a, fs)])
    await hub.push([r.raw for r in chain(b, [fs[1], other])])
    await hub.push([r.raw for r in chain(pending, forms(1, seed=9))])

    status, wl = await get_work(hub, f"?origin={b.public.hex()}")
    assert status == 200
    assert [i["tps"] for i in wl["second"]] == [fs[0]["tps"]]  # fs[1] verified; not b's own
    (c,) = wl["correction"]
    assert c["tps"] == fs[2]["tps"] and c["status"] == "conflict"
    digests = {r["mine"]: r["digest"] for r in c["live"]}
    assert digests[1] == worklist.digest(entry.numbers(entry.parse(other)))
    assert digests[0] == worklist.digest(entry.numbers(entry.parse(fs[2])))
    assert "sah" not in repr(wl)  # no numbers, no field names

    # The pending laptop's entry is held: not on anyone's list yet.
    status, wl = await get_work(hub, "")
    assert len(wl["second"]) == 1

    key = f"{fs[1]['form']}:{fs[1]['tps']}"
    status, wl = await get_work(hub, f"?election=pemilu-2024&key={key}&limit=0")
    assert wl["second"] == [] and wl["more"]["second"] == 1
    assert [(k["tps"], k["status"]) for k in wl["keys"]] == [(fs[1]["tps"], "verified")]

    for bad in ("?limit=x", "?origin=zz", "?key=PPWP:1", "?key=PPWP:3171011001001"):
        status, err = await get_work(hub, bad)
        assert status == 400 and err["error"]["code"] == "bad_encoding", bad
