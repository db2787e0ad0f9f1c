"""The station's server side in-process: real stores in tmp_path, the aiohttp app on a real
socket (aiohttp's test server on 127.0.0.1), no browser."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from client.config import ClientConfig
from client.store import ClientStore
from client.ui import cells, i18n, layout
from client.ui import server as server_mod
from client.ui.config import SETTINGS as UI_SETTINGS
from client.ui.config import UiConfig
from client.ui.drafts import UiStore
from client.ui.server import Guard, make_app
from client.ui.station import Station
from hub.protocol import rules
from hub.shared.blobs import BlobStore

from .conftest import make_form

REPO = Path(__file__).resolve().parents[2]
TPS = "9901010001001"


def as_cells(form: dict[str, Any]) -> dict[str, str]:
    from tests.ui.harness import cell_values

    return cell_values(form)


# -- pure parts --------------------------------------------------------------------------------


def test_live_flags_show_only_what_the_typed_cells_decide() -> None:
    f = make_form(tps=TPS)
    f["sah"] += 1
    rows = layout.default_rows("PPWP", TPS)
    full = as_cells(f)
    assert [x.rule for x in cells.live_flags("PPWP", TPS, rows, full, None)] == ["R3", "R5"]
    no_total = {k: v for k, v in full.items() if k != "total"}
    assert [x.rule for x in cells.live_flags("PPWP", TPS, rows, no_total, None)] == ["R3"]
    assert cells.live_flags("PPWP", TPS, rows, {}, None) == []
    # The same flags as the rules give for the saved entry: one implementation.
    assert cells.live_flags("PPWP", TPS, rows, full, None) == rules.check(
        __import__("hub.protocol.entry", fromlist=["parse"]).parse(
            cells.build("PPWP", TPS, rows, full, election="pemilu-2024", operator="x")
        )
    )


def test_empty_is_not_zero_and_optional_blocks_may_be_wholly_empty() -> None:
    f = make_form(tps=TPS)
    rows = layout.default_rows("PPWP", TPS)
    full = as_cells(f)
    assert cells.empty_cell("PPWP", rows, full) is None
    no_optional = {k: v for k, v in full.items()
                   if not k.startswith(("surat_suara", "disabilitas"))}  # fmt: skip
    assert cells.empty_cell("PPWP", rows, no_optional) is None
    built = cells.build("PPWP", TPS, rows, no_optional, election="e", operator="o")
    assert "surat_suara" not in built and "disabilitas" not in built
    partial = dict(no_optional, **{"disabilitas.l": "0"})
    assert cells.empty_cell("PPWP", rows, partial) == "disabilitas.p"
    assert cells.empty_cell("PPWP", rows, dict(full, **{"pengguna_dpt.p": ""})) == "pengguna_dpt.p"
    for bad in ("1000", "x", "-1", "1.5", "٣"):
        with pytest.raises(cells.CellError):
            cells.value("sah", bad)


def test_layout_cell_names_are_the_entry_json_paths() -> None:
    rows = {"partai": {"1": ["1", "2"], "24": []}}
    spec = layout.spec("DPR", TPS, rows, "id")
    names = layout.cell_names("DPR", rows)
    assert names[:3] == ["pemilih_dpt.l", "pemilih_dpt.p", "pemilih_dpt.j"]
    assert names[22:29] == [
        "partai.1.partai",
        "partai.1.caleg.1",
        "partai.1.caleg.2",
        "partai.1.jumlah",
        "partai.24.partai",
        "partai.24.jumlah",
        "sah",
    ]
    assert [s["id"] for s in spec["sections"]] == ["I", "II", "III", "IV", "V"]
    aceh = layout.parties_for("DPRD_PROV", "1101010001001")
    assert aceh[17:23] == [str(n) for n in range(18, 24)]
    assert "18" not in layout.parties_for("DPR", "1101010001001")
    assert layout.clean_rows("PPWP", TPS, {"suara": ["1", "01"]}) == {"suara": ["1", "2", "3"]}
    assert layout.clean_rows("DPD", TPS, {"suara": ["1", "2"]}) == {"suara": ["1", "2"]}


def test_words_have_both_languages_and_every_key_the_page_uses() -> None:
    for key, (id_, en) in i18n.WORDS.items():
        assert set(re.findall(r"\{(\w+)", id_)) == set(re.findall(r"\{(\w+)", en)), key
    static = REPO / "client" / "ui" / "static"
    used = set()
    for js in static.glob("*.js"):
        used |= set(re.findall(r"\bW\.([a-z_]+)", js.read_text()))
    html = (REPO / "client" / "ui" / "templates" / "app.html").read_text()
    used |= set(re.findall(r"\bw\.([a-z_]+)", html))
    assert used - set(i18n.WORDS) == set()
    for prefix in ("state_", "hubstate_", "found_", "form_", "up_", "hub_"):
        assert any(k.startswith(prefix) for k in i18n.WORDS)


def test_ui_settings_are_documented() -> None:
    text = (REPO / "docs" / "configuration.md").read_text()
    for s in UI_SETTINGS:
        assert re.search(rf"^\| `{s.name}` \| `?{s.default if s.default is not None else '—'}",
                         text, flags=re.M), s.name  # fmt: skip
        assert f"`{s.env}`" in text


# -- the server --------------------------------------------------------------------------------


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], Station, Guard]]:
    async with _station_client(tmp_path) as c:
        yield c


@contextlib.asynccontextmanager
async def _station_client(
    tmp_path: Path,
) -> AsyncIterator[tuple[TestClient[Any, Any], Station, Guard]]:
    data = tmp_path / "laptop"
    store, _ = await ClientStore.create(data, "Meja 1", now=1)
    ui = await UiStore.open(data)
    cfg = UiConfig.build(ClientConfig.build(data_dir=data), operator="Uji", sync=False,
                         open_browser=False)  # fmt: skip
    st = Station(cfg, store, ui, BlobStore(data / "blobs"), None)
    await st.start()
    guard = Guard(0)
    server = TestServer(make_app(st, guard), host="127.0.0.1")
    tc: TestClient[Any, Any] = TestClient(server)
    await tc.start_server()
    guard.set_port(server.port or 0)
    try:
        yield tc, st, guard
    finally:
        await tc.close()
        await st.stop()
        await ui.close()
        await store.close()


async def test_the_page_is_compiled_at_startup_not_on_the_first_request(tmp_path: Path) -> None:
    """Jinja2 compiled the page on its first request, on the event loop; the app compiles it
    on a worker thread when it starts."""
    server_mod.TEMPLATES.cache.clear()  # type: ignore[union-attr]
    compiled: list[str | None] = []
    real = server_mod.TEMPLATES.compile

    def counting(source: Any, name: str | None = None, *a: Any, **k: Any) -> Any:
        compiled.append(name)
        return real(source, name, *a, **k)

    server_mod.TEMPLATES.compile = counting  # type: ignore[method-assign]
    try:
        async with _station_client(tmp_path) as (tc, _st, _guard):
            assert compiled == ["app.html"]
            r = await tc.get("/")
            assert r.status == 200 and "<html" in await r.text()
            assert compiled == ["app.html"]
    finally:
        del server_mod.TEMPLATES.compile


def headers(guard: Guard) -> dict[str, str]:
    return {"X-C1-Token": guard.token, "Origin": f"http://127.0.0.1:{guard.port}"}


async def test_concurrent_and_retried_saves_sign_one_entry(client: Any) -> None:
    tc, st, guard = client
    h = headers(guard)
    r = await tc.post("/api/drafts", json={"form": "PPWP", "tps": TPS}, headers=h)
    assert r.status == 200, await r.text()
    draft = await r.json()
    body = {"rev": 1, "cells": as_cells(make_form(tps=TPS)), "rows": draft["rows"],
            "confirm": True}  # fmt: skip
    url = f"/api/drafts/{draft['id']}/save"
    replies = await asyncio.gather(*(tc.post(url, json=body, headers=h) for _ in range(5)))
    got = [await x.json() for x in replies]
    assert {g["seq"] for g in got} == {1}
    assert sorted(g["again"] for g in got) == [False, True, True, True, True]
    assert await st.store.last_seq() == 1

    # A crash between the commit and the draft's update: the store's own check answers.
    await st.ui._exec("UPDATE drafts SET state = 'open', seq = NULL")
    again = await (await tc.post(url, json=body, headers=h)).json()
    assert again["seq"] == 1 and await st.store.last_seq() == 1


async def test_guard_refuses_foreign_hosts_origins_and_tokens(client: Any) -> None:
    tc, _st, guard = client
    ok = headers(guard)
    assert (await tc.get("/api/state", headers=ok)).status == 200
    r = await tc.get("/api/state", headers={**ok, "Host": f"evil.example:{guard.port}"})
    assert r.status == 421 and (await r.json())["error"]["code"] == "bad_host"
    r = await tc.post("/api/operator", json={"name": "X"},
                      headers={**ok, "Origin": "http://localhost.evil.example"})  # fmt: skip
    assert r.status == 403 and (await r.json())["error"]["code"] == "bad_origin"
    r = await tc.post("/api/operator", json={"name": "X"}, headers={"Origin": ok["Origin"]})
    assert r.status == 403 and (await r.json())["error"]["code"] == "bad_token"
    r = await tc.get("/scan/" + "ab" * 32)
    assert r.status == 403
    r = await tc.get("/", headers={"Host": f"localhost:{guard.port}"})
    assert r.status == 200 and guard.token in await r.text()
    assert "Access-Control-Allow-Origin" not in r.headers


async def test_bad_input_gets_a_field_and_touches_nothing(client: Any) -> None:
    tc, st, guard = client
    h = headers(guard)
    r = await tc.post("/api/drafts", json={"form": "PPWP", "tps": "12"}, headers=h)
    err = (await r.json())["error"]
    assert r.status == 400 and err["field"] == "tps" and "13" in err["reason_id"]
    r = await tc.post("/api/drafts", json={"form": "DPRD_KABKO", "tps": "3171011001001"},
                      headers=h)  # fmt: skip
    assert (await r.json())["error"]["field"] == "form"
    draft = await (await tc.post("/api/drafts", json={"form": "PPWP", "tps": TPS},
                                 headers=h)).json()  # fmt: skip
    url = f"/api/drafts/{draft['id']}"
    r = await tc.post(url + "/check", json={"rev": 1, "cells": {"sah": "12a"}, "rows": {}},
                      headers=h)  # fmt: skip
    assert (await r.json())["error"]["field"] == "sah"
    r = await tc.post(url + "/save", json={"rev": 2, "cells": {"sah": "1"}, "rows": {},
                                           "confirm": True}, headers=h)  # fmt: skip
    err = (await r.json())["error"]
    assert err["code"] == "empty_cell" and err["field"] == "pemilih_dpt.l"
    r = await tc.post("/api/scans", data=b"not an image at all", headers=h)
    assert r.status == 400 and (await r.json())["error"]["code"] == "not_an_image"
    st.blobs.max_size = 1000
    r = await tc.post("/api/scans", data=b"\x89PNG\r\n\x1a\n" + b"\0" * 5000, headers=h)
    err = (await r.json())["error"]
    assert r.status == 413 and err["code"] == "too_large" and "MiB" in err["reason"]
    assert not list(st.blobs.root.rglob("*.part"))
    assert await st.store.last_seq() == 0
