"""The coordinator's console, in-process over a real store (the browser tests are in
tests/ui/test_console.py): who may act, the shared live status, approving through the page's
own token, resolving a conflict with a superseding entry."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import string
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.access import is_loopback
from hub.console import app as console_app
from hub.console import locality
from hub.console.app import CONSOLE, TOKEN_HEADER
from hub.console.i18n import WORDS
from hub.console.live import COUNT_KEYS, counts_of
from hub.console.tally import Tally
from hub.protocol import entry, record, state
from hub.protocol.identity import Identity
from hub.store import HubStore
from tests.helpers import chain, forms
from tests.shared.images import png

from .conftest import MakeClient, Served
from .test_blobs import LAPTOP, ScanHub, scan_hub, sha
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


def test_the_read_only_page_takes_its_words_from_the_same_table() -> None:
    """hub/dashboard.py (root and PostgreSQL hubs) keeps no word table of its own: its words,
    including its briefer wordings, are the console's ``WORDS``."""
    from hub import dashboard

    tables = [name for name, v in vars(dashboard).items() if isinstance(v, dict) and v
              and all(isinstance(x, tuple) and len(x) == 2 for x in v.values())]  # fmt: skip
    assert tables == []
    assert set(dashboard._KEYS.values()) <= set(WORDS)
    s = {"now": 10.0, "name": "Root", "role": "national", "node_id": "AAAA-BBBB-CCCC",
         "entries": {"accepted": 3, "held": 0}, "tps": {"single": 1, "verified": 1, "conflict": 0},
         "forks": 0, "devices": {"pending": 1},
         "upstream": {"state": "backoff", "url": "http://up", "backlog": 2, "oldest_age_s": 4.0,
                      "confirmed": 1, "rejected": 0},
         "device_list": [{"id": "D1", "name": "Meja", "state": "approved", "forked": False,
                          "code": "1234", "entries": 3, "last_seen": 9}],
         "conflicts": [], "flags": {}}  # fmt: skip
    ind, eng = dashboard.render(s, "id"), dashboard.render(s, "en")
    for key in ("dash_title", "verified", "devices", "backlog_short", "oldest_label"):
        assert WORDS[key][0].format(name="Root") in ind and WORDS[key][1].format(name="Root") in eng
    assert "1 laptop menunggu persetujuan" in ind and "1 laptop(s) waiting" in eng
    assert ">menunggu coba lagi<" in ind and ">backing off<" in eng  # the console's st_ words
    assert ">disetujui<" in ind and ">English</a>" in ind and ">Bahasa Indonesia</a>" in eng


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


async def test_what_follows_the_ticker_does_not_derive_while_pushes_commit(hub: Served) -> None:
    """A page's fragments (fetched after an event) and polls take the ticker's room: five
    open pages asking after each push must not each derive (the ticker
    paces derivations while pushes commit). Opening a page still derives when quick."""
    live = hub.http.app[CONSOLE].live
    assert live._task is not None
    live._task.cancel()  # no ticker: only what the requests derive is counted
    with contextlib.suppress(asyncio.CancelledError):
        await live._task
    laptop = Identity.generate()
    await hub.enrolled(laptop, approve=True)
    log = [r.raw for r in chain(laptop, forms(12))]
    await live.refresh()
    assert live.room is not None
    seen, derived = live.room.version, live.derivations
    for i in range(6):
        await hub.push(log[i * 2 : i * 2 + 2])
        for _ in range(5):
            for path in ("/console/part/devices", "/console/part/conflicts", "/console/state.json"):
                await _page(hub, path)
    assert live.derivations == derived and live.room.version == seen
    assert '<b data-count="accepted">12</b>' in await _page(hub)  # a page opened: fresh
    assert live.derivations == derived + 1


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
    await console.live.refresh()  # the ticker's next room (a page fetches parts after its event)
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
    differing = re.findall(r'data-differs="1" data-field="([^"]+)"><th scope="row"[^>]*>([^<]+)<',
                           detail)  # fmt: skip
    # only the cell the second operator typed differently, named as on the paper
    assert differing == [("suara.1", "Pasangan calon nomor 1")]
    assert "IV. PEROLEHAN SUARA PASANGAN CALON" in detail
    assert ">1. Pemilih dalam DPT · L<" in detail and ">A. Jumlah suara sah<" in detail
    assert ">suara.1<" not in detail and ">pemilih_dpt.l<" not in detail
    english = await _page(hub, q + "&lang=en")
    assert ">Candidate pair 1<" in english and "IV. VOTES PER CANDIDATE PAIR" in english
    assert ">1. Voters on the DPT · L (men)<" in english
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


# -- the flags page: the scan beside the numbers ----------------------------------------------


@pytest.fixture
async def shub(tmp_path: Path, aiohttp_client: MakeClient) -> AsyncIterator[ScanHub]:
    """A hub keeping scans (tests/hub/test_blobs.py)."""
    store = await HubStore.open(tmp_path)
    h = await scan_hub(tmp_path, store, aiohttp_client)
    yield h
    h.scans.close()
    await store.close()


async def test_a_flagged_entry_shows_its_scans_beside_its_numbers(shub: ScanHub) -> None:
    p1, p2, p3 = png(rgb=(200, 30, 30)), png(rgb=(30, 200, 30)), png(rgb=(30, 30, 200))
    bodies = forms(2, seed=4)
    for b, pages in zip(bodies, [[p1, p2], [p3]], strict=True):
        b["sah"] += 1  # the paper's own mistake, typed as written: R3 (and R5)
        b["scans"] = [sha(p) for p in pages]
    bodies[0]["note"] = "angka sesuai formulir"
    await shub.enrolled(LAPTOP, approve=True)
    status, _ = await shub.push([r.raw for r in chain(LAPTOP, bodies)])
    assert status == 200
    for p in (p1, p2):  # the third page has not arrived
        await shub.upload(p)
    flags = await _page(shub, "/console/flags?rule=R3")
    rows = re.findall(r'data-hash="([0-9a-f]{64})".*?data-scan-state="(\w+)"', flags, flags=re.S)
    hashes = [h for h, _ in rows]
    assert [st for _, st in rows] == ["held", "pending"]
    assert "pindaian menunggu" in flags and 'href="/console/entry?h=' in flags
    first = await _page(shub, f"/console/entry?h={hashes[0]}&rule=R3")
    shown = re.findall(r'<figure data-scan="(\w+)" data-scan-state="(\w+)">\s*<img '
                       r'class="scanpage" src="/v1/blobs/(\w+)"', first)  # fmt: skip
    assert shown == [(sha(p1), "held", sha(p1)), (sha(p2), "held", sha(p2))]
    assert "pindaian menunggu" not in first and "data-confirmed-on-paper" in first
    # the numbers under the paper's sections, the cell R3 points at marked
    assert "V. JUMLAH SUARA SAH DAN TIDAK SAH" in first and ">A. Jumlah suara sah<" in first
    sah = re.search(r'<tr data-field="sah" class="flagged-cell" data-flag-rules="([^"]+)"', first)
    assert sah is not None and "R3" in sah.group(1).split()
    assert f'<td class="num">{bodies[0]["sah"]} <small>' in first
    assert "suara sah = " in first  # the flag's own message, in Indonesian
    assert "data-next" in first and "data-prev" not in first  # entry 1 of 2 in R3
    second = await _page(shub, f"/console/entry?h={hashes[1]}&rule=R3&lang=en")
    assert re.search(rf'data-scan="{sha(p3)}" data-scan-state="pending">\s*<p class="alert warn">'
                     r"scan pending</p>", second)  # fmt: skip
    assert "/v1/blobs/" not in second and ">A. Valid votes<" in second
    assert "data-prev" in second and "data-next" not in second
    async with shub.http.get(f"/console/entry?h={'0' * 64}") as r:
        assert r.status == 404
    # the conflict view shows each reading's pages the same way
    other = json.loads(json.dumps(bodies[1]))
    other["suara"]["1"] += 1
    other["scans"] = [sha(p1)]
    b = Identity.generate()
    await shub.enrolled(b, approve=True)
    await shub.push([r.raw for r in chain(b, [other])])
    q = f"/console/conflict?e={other['election']}&f={other['form']}&t={other['tps']}"
    conflict = await _page(shub, q)
    states = re.findall(r'<figure data-scan="(\w+)" data-scan-state="(\w+)">', conflict)
    assert sorted(states) == sorted([(sha(p3), "pending"), (sha(p1), "held")])
    assert conflict.count('<img class="scanpage"') == 1 and "pindaian menunggu" in conflict


# -- a conflict opened without walking the store ----------------------------------------------


class CountingList(list[Any]):
    """The store's live list of facts, counting the items read from it (by iteration or by
    slice): what a request walks on the event loop."""

    read = 0

    def __iter__(self) -> Any:
        self.read += len(self)
        return super().__iter__()

    def __getitem__(self, i: Any) -> Any:
        got = super().__getitem__(i)
        self.read += len(got) if isinstance(i, slice) else 1
        return got


async def test_a_conflict_is_read_from_the_index_and_sees_later_records(
    hub: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    console = hub.http.app[CONSOLE]
    a, b, c = Identity.generate(), Identity.generate(), Identity.generate()
    for x in (a, b):
        await hub.enrolled(x, approve=True)
    ra, rb = _disagreeing(a, b)
    fillers = chain(a, forms(300, seed=5), start=2, prev=ra[0].hash)
    await hub.push([ra[0].raw, rb[0].raw] + [r.raw for r in fillers])
    key = hub.service.status_now()["conflicts"][0]
    q = f"/console/conflict?e={key['election']}&f={key['form']}&t={key['tps']}"
    assert (await _page(hub, q)).count("data-reading=") == 2
    made = console._made
    assert made is not None and made.views.seen == 302  # the index, built off the loop
    assert [f.seq for f in made.views.by_key[(key["election"], key["form"], key["tps"])]] == [1, 1]
    counting = CountingList(hub.store._mem.facts)  # the store's live list, counted
    hub.store._mem.facts = counting
    console._made = type(made)(made.version, made.views, counting)
    # a third reading, from a laptop not approved yet: stored, not counted
    third = json.loads(json.dumps(forms(1)[0]))
    third["suara"]["1"] += 5
    await hub.enrolled(c, approve=False)
    await hub.push([r.raw for r in chain(c, [third])])
    await console.live.current()  # the room's own status is derived before we count
    before = counting.read
    assert (await _page(hub, q)).count("data-reading=") == 2
    assert counting.read - before <= 1  # the one record stored since the index, not 303
    await hub.service.approve(c.node_id)  # approved after the index was made: now counted
    await console.live.current()
    before = counting.read
    page = await _page(hub, q)
    assert page.count("data-reading=") == 3 and counting.read - before <= 1
    # resolving reads the same way and sees its own new entries
    form = {"e": key["election"], "f": key["form"], "t": key["tps"], "chosen": ra[0].hash.hex()}
    async with hub.http.post(
        "/console/resolve", data=form, headers={TOKEN_HEADER: _token(page)}
    ) as r:
        assert r.status == 200, await r.text()
        assert len((await r.json())["made"]) == 2
    assert 'data-status="verified"' in await _page(hub, q)
    assert console._made is not None and console._made.views.seen == 302  # no new walk needed
    monkeypatch.setattr(console_app, "TAIL", 2)  # more stored since than a page may walk:
    assert 'data-status="verified"' in await _page(hub, q)
    assert console._made.views.seen == 305  # the views (and the index) were derived again
