"""The hub service's HTTP API over each store (conftest.py's backends): the same answers,
whichever store keeps the entries. The root here: results per region as JSON and on its page."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp.test_utils import TestClient

from hub.protocol import codec, enroll
from hub.protocol.identity import Identity
from hub.protocol.quota import Quotas
from hub.server import make_app
from hub.service import HubService
from hub.shared import generator
from hub.storage import HubStorage
from tests.pg.helpers import check, forms, ident, sign
from tests.storecontract.conftest import Opener

ROOT_KEY = Identity.from_seed(b"r" * 32)
Client = TestClient[Any, Any]


async def _root(open_store: Opener, aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    store = await open_store(refuse_unknown=True)
    service = HubService(store, ROOT_KEY, name="Nasional", root=True)
    return await aiohttp_client(make_app(service, admin_token="t", max_body=16 << 20))


async def _post(http: Client, path: str, body: bytes) -> tuple[int, Any]:
    async with http.post(path, data=body, headers={"Content-Type": "application/msgpack"}) as r:
        return r.status, codec.unpack(await r.read(), canonical=False)


async def test_a_root_answers_the_same_over_either_store(
    open_store: Opener, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    http = await _root(open_store, aiohttp_client)
    room = ident(50)
    status, reply = await _post(
        http, "/v1/enroll", enroll.make_request(room, ROOT_KEY.public, "Room", "hub", 1)
    )
    assert status == 200 and reply["state"] == "pending"
    async with http.post(f"/v1/devices/{room.node_id}/approve?role=hub",
                         headers={"Authorization": "Bearer t"}) as r:  # fmt: skip
        assert r.status == 200, await r.text()
    laptops = [ident(51), ident(52)]
    sent, kab = 0, ""
    for i, who in enumerate(laptops):
        word = enroll.endorse(room, who.public, f"L{i}", "laptop", 2)
        bodies = forms(12, seed=51 + i)
        if i == 1:  # another province
            bodies = [{**f, "tps": "98" + f["tps"][2:]} for f in bodies]
        kab = bodies[0]["tps"][:4] if i == 0 else kab
        status, reply = await _post(
            http, "/v1/push", codec.pack({"records": sign(who, bodies), "endorsements": [word]})
        )
        assert status == 200 and reply["accepted"] == 12, reply
        assert [o["state"] for o in reply["origins"]] == ["approved"]
        sent += 12
    async with http.get("/v1/status") as r:
        s = await r.json()
    assert s["entries"] == {"accepted": sent, "held": 0, "total": sent}
    assert s["devices"] == {"pending": 0, "approved": 3, "revoked": 0}
    assert [(h["name"], h["devices"], h["entries"]) for h in s["hubs"]] == [("Room", 2, sent)]
    async with http.get(f"/v1/results?election={generator.ELECTION}") as r:
        national = await r.json()
    ppwp = national["forms"]["PPWP"]
    assert ppwp["tps_counted"] == sent and sorted(ppwp["children"]) == ["98", "99"]
    assert ppwp["votes"] == s["totals"][generator.ELECTION]["PPWP"]["votes"]
    async with http.get(f"/v1/results?election={generator.ELECTION}&region=99") as r:
        prov = await r.json()
    assert prov["level"] == "province" and prov["forms"]["PPWP"]["tps_counted"] == 12
    async with http.get(f"/v1/results?election={generator.ELECTION}&region=9") as r:
        assert r.status == 400
    async with http.get("/?lang=en") as r:
        page = await r.text()
    assert f"data-results='{generator.ELECTION}'" in page and "href='?region=99'" in page
    async with http.get("/?region=99&lang=en") as r:
        page = await r.text()
    assert "Results per region" in page and f"href='?region={kab}'" in page
    status, reply = await _post(http, "/v1/heads", codec.pack({"origins": [laptops[0].public]}))
    assert status == 200 and reply["heads"][0][1] == 12 and len(reply["receipts"]) == 1
    async with http.get(f"/v1/heads/{laptops[1].public.hex()}") as r:
        head = codec.unpack(await r.read(), canonical=False)
    assert (head["seq"], head["state"], head["forked"]) == (12, "approved", 0)
    async with http.get("/metrics") as r:
        text = await r.text()
    assert f"c1hub_records_stored {sent}" in text and 'c1hub_devices{state="approved"} 3' in text


async def test_an_enrollment_past_the_pending_quota_is_429_over_either_store(
    open_store: Opener, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    store = await open_store(refuse_unknown=True, quotas=Quotas(pending_devices=1))
    service = HubService(store, ROOT_KEY, name="Nasional", root=True)
    http = await aiohttp_client(make_app(service, admin_token="t", max_body=16 << 20))
    first, second = ident(55), ident(56)
    status, _ = await _post(
        http, "/v1/enroll", enroll.make_request(first, ROOT_KEY.public, "Room", "hub", 1)
    )
    assert status == 200
    status, reply = await _post(
        http, "/v1/enroll", enroll.make_request(second, ROOT_KEY.public, "Room 2", "hub", 1)
    )
    assert status == 429 and reply["error"]["code"] == "quota", reply
    assert "max_pending_devices" in str(reply["error"])
    assert await store.device(second.public) is None


class CommitAfterFirstRead:
    """The store, with one commit slipped in right after the first read the service makes
    through it: what another receiver (or a push on this one) can do between two awaits."""

    def __init__(self, store: HubStorage, commit: Callable[[], Awaitable[object]]):
        self._store = store
        self._commit: Callable[[], Awaitable[object]] | None = commit

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def read(*args: Any, **kwargs: Any) -> Any:
            out = await attr(*args, **kwargs)
            if self._commit is not None:
                commit, self._commit = self._commit, None
                await commit()
            return out

        return read


async def test_an_origins_head_is_read_at_one_moment(open_store: Opener) -> None:
    store = await open_store()
    who = ident(56)
    raws = sign(who, forms(3, seed=56))
    interleaved = CommitAfterFirstRead(store, lambda: store.push(check(raws), 5))
    service = HubService(cast(HubStorage, interleaved), ROOT_KEY, name="Nasional", root=True)
    first = await service.head(who.public)  # the push commits while the head is being read
    # Either before the push (unknown, nothing held) or after it (pending, head 3): never
    # a head of 3 for an origin the same answer calls unknown.
    seen = (first.state, first.head.seq)
    assert seen in {("unknown", 0), ("pending", 3)}, seen
    after = await service.head(who.public)
    assert (after.state, after.head.seq, after.forked) == ("pending", 3, False)
