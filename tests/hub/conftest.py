"""The hub's HTTP app served in-process (pytest-aiohttp) from a hub service over a real SQLite
store: ``hub`` for one with default settings, ``serve(**service options)`` for others."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.protocol import codec, enroll
from hub.protocol.identity import Identity
from hub.protocol.quota import Quotas
from hub.server import make_app
from hub.service import HubService
from hub.store import HubStore

TOKEN = "test-admin-token"
HUB_KEY = Identity.from_seed(b"h" * 32)
Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


class Served:
    """A hub service and an HTTP client to its app (the service's store open in ``path``)."""

    def __init__(self, service: HubService, http: Client):
        self.service = service
        self.http = http
        self.store = service.store
        self.ident = service.ident

    async def post(
        self, path: str, body: bytes, ctype: str = "application/msgpack"
    ) -> tuple[int, Any]:
        async with self.http.post(path, data=body, headers={"Content-Type": ctype}) as r:
            return r.status, codec.unpack(await r.read(), canonical=False)

    async def push(self, recs: list[bytes]) -> tuple[int, Any]:
        return await self.post("/v1/push", codec.pack({"records": recs}))

    async def enrolled(self, ident: Identity, approve: bool) -> None:
        raw = enroll.make_request(ident, self.ident.public, "Laptop", "laptop", 1)
        status, reply = await self.post("/v1/enroll", raw)
        assert status == 200 and reply["state"] == "pending"
        if approve:
            await self.service.approve(ident.node_id)


@pytest.fixture
async def serve(
    tmp_path: Path, aiohttp_client: MakeClient
) -> AsyncIterator[Callable[..., Awaitable[Served]]]:
    """``await serve(**service options)``: a store in a fresh folder (with ``quotas``), its
    service, a client."""
    stores: list[HubStore] = []

    async def make(
        folder: str = "hub", max_body: int = 16 << 20, quotas: Quotas | None = None, **kw: Any
    ) -> Served:
        (tmp_path / folder).mkdir(exist_ok=True)
        store = await HubStore.open(
            tmp_path / folder, refuse_unknown=kw.get("root", False), quotas=quotas
        )
        stores.append(store)
        service = HubService(store, HUB_KEY, name="Test Hub", **kw)
        app = make_app(service, admin_token=TOKEN, max_body=max_body)
        return Served(service, await aiohttp_client(app))

    yield make
    for store in stores:
        await store.close()


@pytest.fixture
async def hub(serve: Callable[..., Awaitable[Served]]) -> Served:
    return await serve()
