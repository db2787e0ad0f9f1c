"""The hub's HTTP API on a real socket (127.0.0.1, random port) with a real SQLite store."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hub.config import HubConfig
from hub.errors import AlreadyRunning
from hub.node import Hub, init_data_dir
from hub.protocol import codec, enroll, receipt, record
from hub.protocol.identity import Identity
from tests.helpers import chain, forms

MSGPACK = {"Content-Type": "application/msgpack"}


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    init_data_dir(tmp_path / "hub", "Test Hub")
    h = Hub(HubConfig(data_dir=tmp_path / "hub", host="127.0.0.1", port=0, mdns=False))
    await h.start()
    yield h
    await h.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def post(
    http: aiohttp.ClientSession,
    hub: Hub,
    path: str,
    body: bytes,
    ctype: str = "application/msgpack",
) -> tuple[int, Any]:
    async with http.post(hub.url + path, data=body, headers={"Content-Type": ctype}) as r:
        return r.status, codec.unpack(await r.read(), canonical=False)


async def push(http: aiohttp.ClientSession, hub: Hub, recs: list[bytes]) -> tuple[int, Any]:
    return await post(http, hub, "/v1/push", codec.pack({"records": recs}))


async def enrolled(http: aiohttp.ClientSession, hub: Hub, ident: Identity, approve: bool) -> None:
    status, reply = await post(
        http, hub, "/v1/enroll", enroll.make_request(ident, hub.ident.public, "Laptop", "laptop", 1)
    )
    assert status == 200 and reply["state"] == "pending"
    if approve:
        d = hub._store().devices[ident.public]
        await hub.approve(d)


async def test_push_stores_and_receipt_is_signed(hub: Hub, http: aiohttp.ClientSession) -> None:
    laptop = Identity.generate()
    await enrolled(http, hub, laptop, approve=True)
    recs = chain(laptop, forms(30))
    status, reply = await push(http, hub, [r.raw for r in recs])
    assert status == 200
    assert reply["accepted"] == 30 and reply["rejected"] == [] and reply["duplicate"] == 0
    (rc_raw,) = reply["receipts"]
    rc = receipt.decode(rc_raw)
    rc.check(hub.ident.public)
    assert (rc.origin, rc.seq, rc.hash) == (laptop.public, 30, recs[-1].hash)
    s = hub.status()
    assert s["entries"] == {"accepted": 30, "held": 0, "total": 30}
    assert s["tps"]["single"] == 30


async def test_replayed_batch_is_a_noop(hub: Hub, http: aiohttp.ClientSession) -> None:
    laptop = Identity.generate()
    await enrolled(http, hub, laptop, approve=True)
    raws = [r.raw for r in chain(laptop, forms(10))]
    await push(http, hub, raws)
    status, reply = await push(http, hub, raws)
    assert status == 200 and reply["accepted"] == 0 and reply["duplicate"] == 10
    assert hub.status()["entries"]["accepted"] == 10
    assert receipt.decode(reply["receipts"][0]).seq == 10


async def test_unknown_laptop_is_held_then_counted_after_approval(
    hub: Hub, http: aiohttp.ClientSession
) -> None:
    laptop = Identity.generate()  # never enrolled
    status, reply = await push(http, hub, [r.raw for r in chain(laptop, forms(5))])
    assert status == 200 and reply["accepted"] == 5
    assert reply["origins"][0]["state"] == "pending"
    s = hub.status()
    assert s["entries"] == {"accepted": 0, "held": 5, "total": 5}
    assert s["devices"]["pending"] == 1
    await hub.approve(hub._store().devices[laptop.public])
    assert hub.status()["entries"]["accepted"] == 5


async def test_forged_signature_rejected_and_nothing_harmed(
    hub: Hub, http: aiohttp.ClientSession
) -> None:
    laptop = Identity.generate()
    await enrolled(http, hub, laptop, approve=True)
    recs = chain(laptop, forms(4))
    await push(http, hub, [r.raw for r in recs[:3]])
    # Seq 4 re-signed by an impostor key but claiming the laptop's origin.
    impostor = Identity.generate()
    fake = record.make(impostor, 4, recs[2].hash, recs[3].body)
    forged = codec.pack([1, laptop.public, 4, recs[2].hash, recs[3].body, fake.sig])
    status, reply = await push(http, hub, [forged])
    assert status == 200 and reply["accepted"] == 0
    assert reply["rejected"][0]["code"] == "bad_signature"
    # A changed body byte under the original signature is also caught.
    body = bytearray(recs[3].body)
    body[-3] ^= 1
    altered = codec.pack([1, laptop.public, 4, recs[2].hash, bytes(body), recs[3].sig])
    status, reply = await push(http, hub, [altered])
    assert reply["rejected"][0]["code"] in ("bad_signature", "bad_entry", "bad_encoding")
    assert hub.status()["entries"]["accepted"] == 3
    status, reply = await push(http, hub, [recs[3].raw])
    assert reply["accepted"] == 1


async def test_gap_rejected_with_next_seq(hub: Hub, http: aiohttp.ClientSession) -> None:
    laptop = Identity.generate()
    recs = chain(laptop, forms(5))
    _status, reply = await push(http, hub, [recs[0].raw, recs[3].raw, recs[4].raw])
    assert reply["accepted"] == 1
    codes = {r["seq"]: r["code"] for r in reply["rejected"]}
    assert codes == {4: "out_of_order", 5: "out_of_order"}
    assert "send seq 2 first" in reply["rejected"][0]["reason"]


async def test_tampered_prev_is_a_fork_and_origin_is_stopped(
    hub: Hub, http: aiohttp.ClientSession
) -> None:
    laptop = Identity.generate()
    await enrolled(http, hub, laptop, approve=True)
    recs = chain(laptop, forms(3))
    await push(http, hub, [r.raw for r in recs[:2]])
    bad = record.make(laptop, 3, hashlib.sha256(b"other history").digest(), recs[2].body)
    _status, reply = await push(http, hub, [bad.raw])
    assert reply["forks"][0]["code"] == "fork"
    s = hub.status()
    assert s["forks"] == 1 and s["entries"]["held"] == 2
    _status, reply = await push(http, hub, [recs[2].raw])
    assert reply["rejected"][0]["code"] == "origin_forked"
    async with http.get(hub.url + "/v1/forks") as r:
        evidence = await r.json()
    assert evidence[0]["seq"] == 3 and evidence[0]["evidence"] == bad.raw.hex()


async def test_same_seq_different_bytes_is_a_fork_both_kept(
    hub: Hub, http: aiohttp.ClientSession
) -> None:
    laptop = Identity.generate()
    await enrolled(http, hub, laptop, approve=True)
    a = chain(laptop, forms(3, seed=1))
    b = chain(laptop, forms(3, seed=2), start=3, prev=a[1].hash)  # copy enters a different seq 3
    await push(http, hub, [r.raw for r in a])
    _status, reply = await push(http, hub, [b[0].raw])
    assert len(reply["forks"]) == 1
    forks = await hub._store().forks()
    assert forks[0]["evidence"] == b[0].raw.hex() and forks[0]["held"] == a[2].raw.hex()


async def test_revoked_laptop_refused_after_revocation(
    hub: Hub, http: aiohttp.ClientSession
) -> None:
    laptop = Identity.generate()
    await enrolled(http, hub, laptop, approve=True)
    recs = chain(laptop, forms(6))
    await push(http, hub, [r.raw for r in recs[:4]])
    await hub.revoke(hub._store().devices[laptop.public])
    _status, reply = await push(http, hub, [r.raw for r in recs])
    assert reply["duplicate"] == 4 and reply["accepted"] == 0
    assert {r["code"] for r in reply["rejected"]} == {"device_revoked"}
    s = hub.status()
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
    hub: Hub, http: aiohttp.ClientSession, body: bytes, ctype: str, code: str, status: int
) -> None:
    got, reply = await post(http, hub, "/v1/push", body, ctype)
    assert got == status
    assert reply["error"]["code"] == code and reply["error"]["reason"]
    async with http.get(hub.url + "/v1/hello") as r:  # still serving
        assert r.status == 200


async def test_garbage_record_inside_a_batch_is_rejected_alone(
    hub: Hub, http: aiohttp.ClientSession
) -> None:
    laptop = Identity.generate()
    recs = chain(laptop, forms(2))
    status, reply = await push(http, hub, [recs[0].raw, b"\x93\x01\x02", recs[1].raw])
    assert status == 200 and reply["accepted"] == 2
    assert reply["rejected"] == [
        {
            "index": 1,
            "decision": "reject",
            "code": "bad_encoding",
            "reason": reply["rejected"][0]["reason"],
        }
    ]


async def test_oversized_body_and_batch(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    init_data_dir(tmp_path / "h", "Small")
    cfg = HubConfig(data_dir=tmp_path / "h", host="127.0.0.1", port=0, mdns=False,
                    max_body=64 * 1024, max_batch=10)  # fmt: skip
    async with Hub(cfg) as h:
        laptop = Identity.generate()
        status, reply = await push(http, h, [r.raw for r in chain(laptop, forms(11))])
        assert status == 413 and reply["error"]["code"] == "too_large"
        assert "over the limit of 10" in reply["error"]["reason"]
        status, reply = await post(http, h, "/v1/push", b"\x00" * (65 * 1024))
        assert status == 413 and reply["error"]["code"] == "too_large"
        status, reply = await push(http, h, [r.raw for r in chain(laptop, forms(3))])
        assert status == 200 and reply["accepted"] == 3


async def test_forged_enrollment_refused(hub: Hub, http: aiohttp.ClientSession) -> None:
    laptop, other = Identity.generate(), Identity.generate()
    raw = enroll.make_request(laptop, hub.ident.public, "L", "laptop", 1)
    payload, _sig = codec.unpack(raw)
    forged = codec.pack([payload, other.sign(enroll.ENROLL_DOMAIN, payload)])
    status, reply = await post(http, hub, "/v1/enroll", forged)
    assert status == 400 and reply["error"]["code"] == "bad_signature"
    elsewhere = enroll.make_request(laptop, Identity.generate().public, "L", "laptop", 1)
    status, reply = await post(http, hub, "/v1/enroll", elsewhere)
    assert status == 400 and "another hub" in reply["error"]["reason"]
    assert hub._store().devices == {}


async def test_admin_needs_token(hub: Hub, http: aiohttp.ClientSession) -> None:
    laptop = Identity.generate()
    await enrolled(http, hub, laptop, approve=False)
    url = f"{hub.url}/v1/devices/{laptop.node_id}/approve"
    async with http.post(url) as r:
        assert r.status == 401
    async with http.post(url, headers={"Authorization": f"Bearer {hub.token}"}) as r:
        assert r.status == 200 and (await r.json())["state"] == "approved"


async def test_second_hub_on_same_data_dir_refuses(hub: Hub) -> None:
    other = Hub(HubConfig(data_dir=hub.data_dir, host="127.0.0.1", port=0, mdns=False))
    with pytest.raises(AlreadyRunning, match="already serving"):
        await other.start()


async def test_concurrent_pushes_from_many_laptops(hub: Hub, http: aiohttp.ClientSession) -> None:
    import asyncio

    laptops = [Identity.generate() for _ in range(8)]
    chains = [chain(lp, forms(40, seed=i)) for i, lp in enumerate(laptops)]

    async def run(recs: list[record.Record]) -> None:
        for i in range(0, len(recs), 7):
            status, reply = await push(http, hub, [r.raw for r in recs[i : i + 7]])
            assert status == 200 and not reply["rejected"]

    await asyncio.gather(*(run(c) for c in chains))
    assert hub.status()["entries"]["total"] == 8 * 40
    for lp in laptops:
        assert hub._store().head_of(lp.public).seq == 40


async def test_restart_keeps_everything(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    init_data_dir(tmp_path / "h", "R")
    cfg = HubConfig(data_dir=tmp_path / "h", host="127.0.0.1", port=0, mdns=False)
    laptop = Identity.generate()
    recs = chain(laptop, forms(20))
    async with Hub(cfg) as h:
        await push(http, h, [r.raw for r in recs[:12]])
    async with Hub(cfg) as h:
        assert h._store().head_of(laptop.public).seq == 12
        _status, reply = await push(http, h, [r.raw for r in recs])
        assert reply["duplicate"] == 12 and reply["accepted"] == 8


async def test_large_batch_checked_by_worker_processes_with_master(
    tmp_path: Path, http: aiohttp.ClientSession, wilayah_path: Path
) -> None:
    """A batch big enough to go to the examine workers: they recompute flags themselves,
    with their own copy of the master (synthetic TPS codes are not in it: R11)."""
    init_data_dir(tmp_path / "h", "W")
    cfg = HubConfig(data_dir=tmp_path / "h", host="127.0.0.1", port=0, mdns=False,
                    wilayah=wilayah_path)  # fmt: skip
    async with Hub(cfg) as h:
        laptop = Identity.generate()
        await enrolled(http, h, laptop, approve=True)
        recs = chain(laptop, forms(600))
        status, reply = await push(http, h, [r.raw for r in recs])
        assert status == 200 and reply["accepted"] == 600
        assert h.status()["flags"].get("R11") == 600
        assert receipt.decode(reply["receipts"][0]).seq == 600


async def test_dashboard_shows_what_needs_attention(hub: Hub, http: aiohttp.ClientSession) -> None:
    laptop = Identity.generate()
    await enrolled(http, hub, laptop, approve=False)
    await push(http, hub, [r.raw for r in chain(laptop, forms(3))])
    code = hub.status()["device_list"][0]["code"]
    async with http.get(hub.url + "/") as r:
        assert r.status == 200 and r.content_type == "text/html"
        page = await r.text()
    assert "menunggu persetujuan" in page and code in page and laptop.node_id in page
    assert "<b>3</b>Entri ditahan" in page
    async with http.get(hub.url + "/?lang=en") as r:
        page = await r.text()
    assert "waiting for approval" in page and "<b>3</b>Entries held" in page


async def test_metrics_are_prometheus_text(hub: Hub, http: aiohttp.ClientSession) -> None:
    laptop = Identity.generate()
    await push(http, hub, [r.raw for r in chain(laptop, forms(4))])
    async with http.get(hub.url + "/metrics") as r:
        text = await r.text()
    assert "c1hub_records_stored 4\n" in text
    assert 'c1hub_devices{state="pending"} 1\n' in text


async def test_approved_laptop_cannot_make_itself_a_hub_and_vouch(
    hub: Hub, http: aiohttp.ClientSession
) -> None:
    laptop = Identity.generate()
    await enrolled(http, hub, laptop, approve=True)
    status, reply = await post(
        http, hub, "/v1/enroll", enroll.make_request(laptop, hub.ident.public, "L", "hub", 2)
    )
    assert status == 200 and reply["state"] == "approved"
    assert hub._store().devices[laptop.public].role == "laptop"
    # It signs an endorsement for a key of its own making and pushes that key's entries.
    sock = Identity.generate()
    endorsement = enroll.endorse(laptop, sock.public, "sock", "laptop", 3)
    body = codec.pack({"records": [r.raw for r in chain(sock, forms(3))],
                       "endorsements": [endorsement]})  # fmt: skip
    status, reply = await post(http, hub, "/v1/push", body)
    assert status == 200 and reply["origins"][0]["state"] == "pending"
    s = hub.status()
    assert s["entries"] == {"accepted": 0, "held": 3, "total": 3}


async def test_group_commit_takes_concurrent_pushes_together(
    hub: Hub, http: aiohttp.ClientSession
) -> None:
    import asyncio

    laptops = [Identity.generate() for _ in range(6)]
    recs = [chain(lp, forms(5, seed=i + 20)) for i, lp in enumerate(laptops)]
    before = hub._store().commits
    replies = await asyncio.gather(*(push(http, hub, [r.raw for r in c]) for c in recs * 1))
    assert all(st == 200 and rep["accepted"] == 5 for st, rep in replies)
    assert hub._store().commits - before < len(laptops)  # several pushes shared a commit
