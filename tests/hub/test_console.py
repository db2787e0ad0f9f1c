"""The coordinator's console, in-process over a real store (the browser tests are in
tests/ui/test_console.py): who may act, the shared live status, approving through the page's
own token, resolving a conflict with a superseding entry."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import string
from typing import Any

import pytest

from hub.access import is_loopback
from hub.console import locality
from hub.console.app import CONSOLE, TOKEN_HEADER
from hub.console.i18n import WORDS
from hub.console.live import COUNT_KEYS, counts_of
from hub.console.tally import Tally
from hub.protocol import entry, record, state
from hub.protocol.identity import Identity
from tests.helpers import chain, forms

from .conftest import Served
from .test_store import disk_full

# -- the locality rule ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("::ffff:127.0.0.1", True),
        ("10.1.2.3", False), ("192.168.1.20", False), ("::ffff:10.0.0.1", False), ("", False),
        (None, False), ("localhost", False), ("fe80::1%eth0", False),
    ],
)  # fmt: skip
def test_is_loopback_takes_addresses_only(address: str | None, loopback: bool) -> None:
    assert is_loopback(address) is loopback


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("127.0.0.1:8470", True), ("localhost:8470", True), ("LOCALHOST", True),
        ("[::1]:8470", True), ("127.9.9.9", True), ("10.0.0.5:8470", False),
        ("evil.example:8470", False), ("127.0.0.1.evil.example", False), ("", False),
    ],
)  # fmt: skip
def test_host_must_be_a_loopback_name(host: str, ok: bool) -> None:
    assert locality.host_is_loopback(host) is ok


def test_check_admin_needs_every_part() -> None:
    tokens = locality.Tokens()
    good = tokens.issue()
    host = "127.0.0.1:8470"
    assert locality.check_admin("127.0.0.1", host, None, good, tokens) is None
    assert locality.check_admin("127.0.0.1", host, "http://127.0.0.1:8470", good, tokens) is None
    assert locality.check_admin("10.0.0.9", host, None, good, tokens) == "not_hub_machine"
    rebinding = "rebind.example:8470"
    assert locality.check_admin("127.0.0.1", rebinding, None, good, tokens) == "not_loopback_host"
    cross = "http://evil.example"
    assert locality.check_admin("127.0.0.1", host, cross, good, tokens) == "bad_origin"
    assert locality.check_admin("127.0.0.1", host, None, None, tokens) == "bad_token"
    other = locality.Tokens().issue()  # another process's page
    assert locality.check_admin("127.0.0.1", host, None, other, tokens) == "bad_token"
    nonce, mac = good.split(".")
    assert not tokens.valid(f"{nonce}x.{mac}")


def test_words_have_both_languages_with_the_same_placeholders() -> None:
    fields = string.Formatter()
    for key, (ind, eng) in WORDS.items():
        assert ind and eng, key
        names = [{f for _, f, _, _ in fields.parse(text) if f} for text in (ind, eng)]
        assert names[0] == names[1], key


# -- pages and actions ------------------------------------------------------------------------


def _token(page: str) -> str:
    m = re.search(r'data-token="([^"]*)"', page)
    assert m is not None
    return m.group(1)


async def _page(hub: Served, path: str = "/", **headers: str) -> str:
    async with hub.http.get(path, headers=headers) as r:
        assert r.status == 200, await r.text()
        return await r.text()


async def test_pending_laptop_is_approved_through_the_page(hub: Served) -> None:
    laptop = Identity.generate()
    await hub.enrolled(laptop, approve=False)
    await hub.push([r.raw for r in chain(laptop, forms(4))])
    page = await _page(hub)
    assert 'data-mode="admin"' in page
    assert f'data-device-id="{laptop.node_id}" data-state="pending"' in page
    assert 'data-action="approve"' in page
    code = (await hub.service.devices())[0].code
    assert len(code.replace(" ", "")) == 16 and code in page
    assert '<b data-count="held">4</b>' in page and '<b data-count="accepted">0</b>' in page
    url = f"/console/devices/{laptop.node_id}/approve"
    async with hub.http.post(url) as r:  # no token: refused, nothing changed
        assert r.status == 403 and (await r.json())["error"]["code"] == "admin_local_only"
    assert hub.store.devices[laptop.public].state == "pending"
    async with hub.http.post(url, headers={TOKEN_HEADER: _token(page),
                                           "Origin": "http://evil.example"}) as r:  # fmt: skip
        assert r.status == 403
    origin = f"http://{hub.http.host}:{hub.http.port}"
    async with hub.http.post(url, headers={TOKEN_HEADER: _token(page), "Origin": origin}) as r:
        assert r.status == 200, await r.text()
        assert (await r.json())["device"]["state"] == "approved"
    page = await _page(hub)
    assert f'data-device-id="{laptop.node_id}" data-state="approved"' in page
    assert '<b data-count="accepted">4</b>' in page


async def test_another_host_name_sees_a_read_only_console(hub: Served) -> None:
    """DNS rebinding: a page served under another name that resolves to the hub gets no
    buttons and no token, and its POSTs are refused even with a real token."""
    laptop = Identity.generate()
    await hub.enrolled(laptop, approve=False)
    page = await _page(hub, Host="hub.example:8470")
    assert 'data-mode="read-only"' in page and 'data-token=""' in page
    assert 'data-action="approve"' not in page
    token = _token(await _page(hub))
    rebound = {TOKEN_HEADER: token, "Host": "hub.example:8470"}
    async with hub.http.post(f"/console/devices/{laptop.node_id}/approve", headers=rebound) as r:
        assert r.status == 403
    assert hub.store.devices[laptop.public].state == "pending"


async def test_events_carry_the_new_counts_and_one_derivation_serves_all(hub: Served) -> None:
    console = hub.http.app[CONSOLE]
    console.live.interval = 0.05
    laptop = Identity.generate()
    await hub.enrolled(laptop, approve=True)
    streams = [await hub.http.get("/console/events") for _ in range(3)]
    try:
        first = [await _event(s) for s in streams]
        assert all(e["counts"]["accepted"] == 0 for e in first)
        assert set(first[0]["counts"]) == {*COUNT_KEYS, "forks_unapproved"}
        before = console.live.derivations
        await hub.push([r.raw for r in chain(laptop, forms(5))])
        nxt = [await _event(s) for s in streams]
        assert [e["counts"]["accepted"] for e in nxt] == [5, 5, 5]
        assert len({e["v"] for e in nxt}) == 1
        assert console.live.derivations - before == 1  # one for the three viewers
        await asyncio.sleep(0.3)  # nothing changed: nothing derived
        assert console.live.derivations - before == 1
    finally:
        for s in streams:
            s.close()
    async with hub.http.get("/console/state.json") as r:
        polled = await r.json()
    assert polled["counts"] == counts_of(hub.service.status_now())


async def test_the_shared_status_follows_pushes_by_the_entries_they_add(hub: Served) -> None:
    """The room is the full derivation's status, though after the first derivation each one
    takes only the entries stored since (approvals and revocations re-derive that device's
    TPS), and a commit that fails makes it start over from what the store read back."""
    live = hub.http.app[CONSOLE].live
    a, b = Identity.generate(), Identity.generate()
    await hub.enrolled(a, approve=True)
    await hub.enrolled(b, approve=False)
    fa, fb = forms(6, seed=3), forms(6, seed=3)
    fb[0]["suara"]["1"] += 1  # one conflict once b counts
    log = [r.raw for r in chain(a, fa + forms(5, seed=9))]
    await hub.push(log[:6])
    await hub.push([r.raw for r in chain(b, fb)])

    async def same_as_full() -> dict[str, Any]:
        await live.refresh()
        assert live.room is not None
        got, want = dict(live.room.status), hub.service.status_now()
        got.pop("now"), want.pop("now")
        assert got == want
        return got

    s = await same_as_full()
    assert s["entries"] == {"accepted": 6, "held": 6, "total": 12} and live._tally is not None
    assert live._tally.total == 12
    tally = live._tally
    await hub.service.approve(b.node_id)
    s = await same_as_full()
    assert s["tps"] == {"single": 0, "verified": 5, "conflict": 1}
    assert live._tally is tally and tally.total == 12  # the same tally, nothing taken twice
    await hub.push(log[6:8])
    s = await same_as_full()
    assert live._tally is tally and tally.total == 14 and s["entries"]["accepted"] == 14
    await hub.service.revoke(b.node_id)
    await same_as_full()

    hub.store.db.before_commit = disk_full()
    status, _ = await hub.push(log[8:])
    assert status != 200
    status, _ = await hub.push(log[8:])
    assert status == 200
    s = await same_as_full()  # the store read its memory back: a new tally of every entry
    assert live._tally is not tally and s["entries"]["total"] == 17


async def test_a_long_catch_up_is_taken_in_slices_with_the_same_result(
    hub: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hub.console import live as live_mod

    live = hub.http.app[CONSOLE].live
    await live.refresh()
    a = Identity.generate()
    await hub.enrolled(a, approve=True)
    await hub.push([r.raw for r in chain(a, forms(7))])
    monkeypatch.setattr(live_mod, "CATCH_UP", 2)  # 7 new entries: slices of 2, 2, 2, then 1
    slices: list[int] = []
    update = Tally.update

    def counted(self: Tally, devices: Any, new: Any) -> int:
        slices.append(len(new))
        return update(self, devices, new)

    monkeypatch.setattr(Tally, "update", counted)
    await live.refresh()
    assert slices == [2, 2, 2, 1]
    assert live.room is not None
    got, want = dict(live.room.status), hub.service.status_now()
    got.pop("now"), want.pop("now")
    assert got == want and got["entries"]["accepted"] == 7


async def test_open_pages_share_one_rendering_of_a_fragment(hub: Served) -> None:
    console = hub.http.app[CONSOLE]
    laptop = Identity.generate()
    await hub.enrolled(laptop, approve=True)
    await _page(hub)
    first = [await _page(hub, "/console/part/devices?page=1") for _ in range(3)]
    assert len(set(first)) == 1 and len(console._parts[2]) == 1
    assert '<td class="num">0</td>' in first[0]
    await _page(hub, "/console/part/devices?page=1&lang=en")  # another language: its own
    assert len(console._parts[2]) == 2
    await hub.push([r.raw for r in chain(laptop, forms(3))])
    after = await _page(hub, "/console/part/devices?page=1")  # a new room: rendered again
    assert '<td class="num">3</td>' in after and len(console._parts[2]) == 1
    readonly = await _page(hub, "/console/part/devices?page=1", Host="hub.example:8470")
    assert 'data-action="revoke"' in after and 'data-action="revoke"' not in readonly


async def test_a_big_store_shows_the_provisional_room_without_waiting(
    hub: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hub.console import live as live_mod

    laptop = Identity.generate()
    await hub.enrolled(laptop, approve=True)
    await hub.push([r.raw for r in chain(laptop, forms(3))])
    console = hub.http.app[CONSOLE]
    await console.live.stop()  # a hub just started, its first tally not done
    live = console.live = live_mod.Live(hub.service)
    monkeypatch.setattr(live_mod, "SMALL_STORE", 2)  # 3 entries count as a big store here
    room = await live.current()
    assert room.version == 0 and room.status["provisional"]  # no wait for the first tally
    await live.stop()
    live = console.live = live_mod.Live(hub.service)
    monkeypatch.setattr(live_mod, "SMALL_STORE", 3)
    room = await live.current()  # a small store: the page waits for it
    assert room.version == 1 and room.status["entries"]["accepted"] == 3
    await live.stop()


async def _event(resp: Any) -> dict[str, Any]:
    while True:
        line = await asyncio.wait_for(resp.content.readline(), 10)
        if line.startswith(b"data: "):
            obj: dict[str, Any] = json.loads(line[6:])
            return obj


def _disagreeing(a: Identity, b: Identity) -> tuple[list[record.Record], list[record.Record]]:
    form = forms(1)[0]
    other = json.loads(json.dumps(form))
    other["suara"]["1"] += 1
    other["operator"] = "Operator 02"
    return chain(a, [form]), chain(b, [other])


async def test_resolving_a_conflict_signs_a_superseding_entry(hub: Served) -> None:
    a, b = Identity.generate(), Identity.generate()
    for x in (a, b):
        await hub.enrolled(x, approve=True)
    ra, rb = _disagreeing(a, b)
    await hub.push([ra[0].raw, rb[0].raw])
    status = hub.service.status_now()
    assert status["tps"]["conflict"] == 1
    c = status["conflicts"][0]
    page = await _page(hub)
    assert f'data-conflict="{c["form"]}:{c["tps"]}"' in page
    q = f"/console/conflict?e={c['election']}&f={c['form']}&t={c['tps']}"
    detail = await _page(hub, q)
    differing = re.findall(r'data-differs="1"><th scope="row">([^<]+)</th>', detail)
    assert differing == ["suara.1"]  # only the cell the second operator typed differently
    token = _token(detail)
    form = {"e": c["election"], "f": c["form"], "t": c["tps"], "chosen": ra[0].hash.hex()}
    async with hub.http.post("/console/resolve", data=form, headers={TOKEN_HEADER: token}) as r:
        assert r.status == 200, await r.text()
        made = (await r.json())["made"]
    assert len(made) == 1
    after = hub.service.status_now()
    assert after["tps"] == {"single": 0, "verified": 1, "conflict": 0}
    coord = next(d for d in (await hub.service.devices()) if d.name.startswith("Koordinator"))
    assert coord.state == "approved" and coord.role == "laptop"
    raw = await hub.store.record_raw(bytes.fromhex(coord.public), 1)
    assert raw is not None
    rec = record.decode(raw)
    rec.verify()
    body = entry.decode_body(rec.body)
    assert body["supersedes"] == rb[0].hash.hex() and body["operator"] == "Koordinator"
    assert entry.numbers(body) == entry.numbers(entry.decode_body(ra[0].body))
    again = await _page(hub, q)
    assert 'data-status="verified"' in again and 'data-action="choose"' not in again
    async with hub.http.post("/console/resolve", data=form, headers={TOKEN_HEADER: token}) as r:
        assert r.status == 409  # nothing left to resolve; nothing signed
    assert hub.store.head_of(bytes.fromhex(coord.public)).seq == 1
    assert hub.service.status_now()["tps"][state.VERIFIED] == 1


async def test_lan_addresses_never_show_loopback(hub: Served) -> None:
    page = await _page(hub)
    assert "data-lan-url" not in page  # the test app listens on 127.0.0.1 only: say so
    assert "--host 0.0.0.0" in page
    hub.http.app[CONSOLE].listen_host = "0.0.0.0"
    page = await _page(hub)
    urls = re.findall(r"data-lan-url>http://([0-9.]+):", page)
    assert "127.0.0.1" not in urls
    mine = {a for a in socket.gethostbyname_ex(socket.gethostname())[2]} | set(urls)
    assert set(urls) <= mine


async def test_flags_forks_progress_and_exports_pages(hub: Served) -> None:
    a = Identity.generate()
    await hub.enrolled(a, approve=True)
    fs = forms(3)
    fs[0]["sah"] += 1  # the paper's own mistake, typed as written (R3, R5)
    fs[0]["note"] = "angka sesuai formulir"
    await hub.push([r.raw for r in chain(a, fs)])
    flags = await _page(hub, "/console/flags?rule=R5")
    assert f'data-flagged="PPWP:{fs[0]["tps"]}"' in flags
    assert flags.count("data-flagged=") == 1 and "data-confirmed-on-paper" in flags
    assert "total = sah + tidak sah" in flags  # the rule explained in Indonesian
    assert "total = valid + invalid" in await _page(hub, "/console/flags?rule=R5&lang=en")
    async with hub.http.get("/console/export/csv") as r:
        assert r.status == 200 and "attachment" in r.headers["Content-Disposition"]
        csv_text = await r.text()
    assert fs[1]["tps"] in csv_text
    async with hub.http.get("/console/export/c1b") as r:
        assert r.status == 200 and len(await r.read()) > 100
    other = forms(1, seed=9)
    forked = chain(a, other, start=2, prev=bytes(32))  # seq 2 again, another history
    await hub.push([forked[0].raw])
    forks = await _page(hub, "/console/forks")
    assert f'data-fork="{a.node_id}:2"' in forks and 'data-differs="1"' in forks
    assert f'data-device-id="{a.node_id}"' in forks and "c1client init" in forks
    progress = await _page(hub, "/console/progress")
    assert "--wilayah" in progress  # no master here: said plainly, nothing made up


async def test_progress_against_the_master_per_kecamatan_and_kelurahan(
    serve: Any, real_master: Any
) -> None:
    import random

    from hub.shared import generator

    hub = await serve(master=real_master)
    a = Identity.generate()
    await hub.enrolled(a, approve=True)
    desa = "3171011001"  # GAMBIR, kecamatan 317101, 10 TPS in the 2024 master
    bodies = [generator.make_form(random.Random(i), f"{desa}{i:03d}", "PPWP", operator="Op")
              for i in (1, 2, 3)]  # fmt: skip
    await hub.push([r.raw for r in chain(a, bodies)])
    page = await _page(hub, "/console/progress?q=gambir")
    row = re.search(rf'data-region="{desa}">(.*?)</tr>', page, flags=re.S)
    assert row is not None
    cells = re.findall(r'<td class="num[^"]*">(\d+)</td>', row.group(1))
    expected = sum(1 for _ in real_master.tps_codes(desa))
    assert cells == [str(expected), "3", "0", "0", str(expected - 3)]
    assert 'data-region="317101"' in page and 'data-region="317102"' not in page
    assert 'class="print"' in await _page(hub, "/console/progress?print=1")
