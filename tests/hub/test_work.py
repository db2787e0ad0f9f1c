"""GET /v1/work on a real hub: the work list without numbers, digests the laptop can match."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from hub.config import HubConfig
from hub.node import Hub, init_data_dir
from hub.protocol import codec, entry, worklist
from hub.protocol.identity import Identity
from tests.helpers import chain, forms

from .test_server import enrolled, push


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    init_data_dir(tmp_path / "hub", "Test Hub")
    h = Hub(HubConfig(data_dir=tmp_path / "hub", host="127.0.0.1", port=0, mdns=False))
    await h.start()
    yield h
    await h.stop()


async def get(http: aiohttp.ClientSession, hub: Hub, query: str) -> tuple[int, dict]:
    assert hub.url is not None
    async with http.get(hub.url + "/v1/work" + query) as r:
        assert r.content_type == "application/msgpack"
        return r.status, codec.unpack(await r.read(), canonical=False)


async def test_work_list_over_http(hub: Hub) -> None:
    a, b, pending = Identity.generate(), Identity.generate(), Identity.generate()
    fs = forms(3)
    other = dict(fs[2], sah=fs[2]["sah"] + 1)
    async with aiohttp.ClientSession() as http:
        await enrolled(http, hub, a, approve=True)
        await enrolled(http, hub, b, approve=True)
        await enrolled(http, hub, pending, approve=False)
        await push(http, hub, [r.raw for r in chain(a, fs)])
        await push(http, hub, [r.raw for r in chain(b, [fs[1], other])])
        await push(http, hub, [r.raw for r in chain(pending, forms(1, seed=9))])

        status, wl = await get(http, hub, f"?origin={b.public.hex()}")
        assert status == 200
        assert [i["tps"] for i in wl["second"]] == [fs[0]["tps"]]  # fs[1] verified; not b's own
        (c,) = wl["correction"]
        assert c["tps"] == fs[2]["tps"] and c["status"] == "conflict"
        digests = {r["mine"]: r["digest"] for r in c["live"]}
        assert digests[1] == worklist.digest(entry.numbers(entry.parse(other)))
        assert digests[0] == worklist.digest(entry.numbers(entry.parse(fs[2])))
        assert "sah" not in repr(wl)  # no numbers, no field names

        # The pending laptop's entry is held: not on anyone's list yet.
        status, wl = await get(http, hub, "")
        assert len(wl["second"]) == 1

        key = f"{fs[1]['form']}:{fs[1]['tps']}"
        status, wl = await get(http, hub, f"?election=pemilu-2024&key={key}&limit=0")
        assert wl["second"] == [] and wl["more"]["second"] == 1
        assert [(k["tps"], k["status"]) for k in wl["keys"]] == [(fs[1]["tps"], "verified")]

        for bad in ("?limit=x", "?origin=zz", "?key=PPWP:1", "?key=PPWP:3171011001001"):
            status, err = await get(http, hub, bad)
            assert status == 400 and err["error"]["code"] == "bad_encoding", bad
