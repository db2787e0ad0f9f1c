"""A big hub on PostgreSQL pages its device list: the status holds the counts and the first
``STATUS_DEVICES`` devices, ``GET /v1/devices?limit=&after=`` the rest a page at a time, and
the root's page says how many it does not show."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from hub.pg.store import PgStore
from hub.protocol.identity import Identity
from hub.server import make_app
from hub.service import HubService
from hub.status import STATUS_DEVICES
from tests.pg.helpers import ident

ROOT_KEY = Identity.from_seed(b"p" * 32)
Client = TestClient[Any, Any]
MANY = STATUS_DEVICES + 5


async def test_a_big_roots_status_lists_the_first_page_and_the_api_the_rest(
    pg_dsn: str, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    store = await PgStore.open(pg_dsn)
    service = HubService(store, ROOT_KEY, name="Nasional", root=True)
    http = await aiohttp_client(make_app(service, admin_token="t", max_body=1 << 20))
    for i in range(MANY):  # first seen 1..MANY: the list's order is the enrollment order
        await store.enroll(ident(2000 + i).public, f"L{i}", "laptop", 1 + i)
    order = [ident(2000 + i).node_id for i in range(MANY)]

    async with http.get("/v1/status") as r:
        s = await r.json()
    assert [d["id"] for d in s["device_list"]] == order[:STATUS_DEVICES]
    assert s["device_list_more"] is True and s["devices"]["pending"] == MANY

    async with http.get("/v1/devices?limit=60") as r:
        first = [d["id"] for d in await r.json()]
    async with http.get(f"/v1/devices?limit=60&after={first[-1]}") as r:
        second = [d["id"] for d in await r.json()]
    assert first + second == order
    async with http.get(f"/v1/devices?after={order[2].lower()}") as r:  # default page: 100
        assert [d["id"] for d in await r.json()] == order[3 : 3 + 100]
    async with http.get("/v1/devices") as r:  # no paging asked for: every device, as before
        assert [d["id"] for d in await r.json()] == order
    async with http.get("/v1/devices?limit=many") as r:
        assert r.status == 400
    async with http.get("/v1/devices?after=NOPE-NOPE-NOPE") as r:
        assert r.status == 404

    async with http.get("/?lang=en") as r:
        page = await r.text()
    assert f"The first {STATUS_DEVICES} of {MANY} devices" in page
    assert order[STATUS_DEVICES - 1] in page and order[STATUS_DEVICES] not in page
