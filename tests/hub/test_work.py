"""GET /v1/work of a hub served in-process: the work list without numbers, digests a laptop
can match."""

from __future__ import annotations

from typing import Any

from hub.protocol import codec, entry, worklist
from hub.protocol.identity import Identity
from tests.helpers import chain, forms

from .conftest import Served


async def get(hub: Served, query: str) -> tuple[int, Any]:
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

    status, wl = await get(hub, f"?origin={b.public.hex()}")
    assert status == 200
    assert [i["tps"] for i in wl["second"]] == [fs[0]["tps"]]  # fs[1] verified; not b's own
    (c,) = wl["correction"]
    assert c["tps"] == fs[2]["tps"] and c["status"] == "conflict"
    digests = {r["mine"]: r["digest"] for r in c["live"]}
    assert digests[1] == worklist.digest(entry.numbers(entry.parse(other)))
    assert digests[0] == worklist.digest(entry.numbers(entry.parse(fs[2])))
    assert "sah" not in repr(wl)  # no numbers, no field names

    # The pending laptop's entry is held: not on anyone's list yet.
    status, wl = await get(hub, "")
    assert len(wl["second"]) == 1

    key = f"{fs[1]['form']}:{fs[1]['tps']}"
    status, wl = await get(hub, f"?election=pemilu-2024&key={key}&limit=0")
    assert wl["second"] == [] and wl["more"]["second"] == 1
    assert [(k["tps"], k["status"]) for k in wl["keys"]] == [(fs[1]["tps"], "verified")]

    for bad in ("?limit=x", "?origin=zz", "?key=PPWP:1", "?key=PPWP:3171011001001"):
        status, err = await get(hub, bad)
        assert status == 400 and err["error"]["code"] == "bad_encoding", bad
