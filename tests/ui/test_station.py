"""The operator's station in real headless Chromium, keyed with the keyboard only.

Every test checks what the laptop's store holds (`c1client list/show --json`), not only
what the page shows.
"""

from __future__ import annotations

import hashlib
import json
import random
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from hub.shared import generator
from tests.integration.procs import free_port
from tests.shared.images import png

from .harness import FileChoosers, Station, cell_values, key_cells

TPS = "9901010001001"  # synthetic province 99: no master needed
OPERATOR = "Siti Rahmawati"


def ppwp(seed: int = 1, tps: str = TPS, **changes: Any) -> dict[str, Any]:
    f = generator.make_form(random.Random(seed), tps, "PPWP", operator=OPERATOR)
    f.update(changes)
    return f


def dpr(tps: str = TPS) -> dict[str, Any]:
    """A consistent DPR form on the 2024 paper: national parties 1-17 and 24, 1-4 candidates
    each."""
    rng = random.Random(5)
    f = generator.make_form(random.Random(6), tps, "PPWP", operator=OPERATOR)
    del f["suara"]
    f["form"] = "DPR"
    names = [*map(str, range(1, 18)), "24"]
    totals = generator._split(rng, f["sah"], [rng.uniform(0.2, 3) for _ in names])
    f["partai"] = {}
    for no, total in zip(names, totals, strict=True):
        only = total // 4
        n = rng.randint(1, 4)
        votes = generator._split(rng, total - only, [1.0] * n)
        caleg = {str(i + 1): v for i, v in enumerate(votes)}
        f["partai"][no] = {"partai": only, "caleg": caleg, "jumlah": total}
    return f


def open_station(browser: Any, station: Station) -> Any:
    page = browser.new_page()
    page.goto(station.url)
    page.wait_for_selector("body[data-ready]")
    return page


def sign_in(page: Any, name: str = OPERATOR) -> None:
    page.wait_for_selector('input[name="operator"]:focus')
    page.keyboard.type(name)
    page.keyboard.press("Enter")
    page.wait_for_selector("#screen-start:not([hidden])")


def start(page: Any, form_key: str, tps: str) -> None:
    """On the start screen: one key for the form type, the TPS code, Enter."""
    page.wait_for_selector('input[name="form"]:focus')
    page.keyboard.press(form_key)
    page.wait_for_selector('input[name="tps"]:focus')
    page.keyboard.type(tps)
    page.keyboard.press("Enter")
    page.wait_for_selector("#screen-form:not([hidden]) input.cell:focus")


def saved_seq(page: Any, seq: int) -> None:
    page.wait_for_selector(f'[data-saved-seq="{seq}"]')


def numbers(entry: dict[str, Any]) -> dict[str, Any]:
    skip = ("operator", "note", "entered_at", "scans", "supersedes")
    return {k: v for k, v in entry.items() if k not in skip}


def test_full_ppwp_form_keyed_with_the_keyboard_only(browser: Any, station: Station) -> None:
    page = open_station(browser, station)
    sign_in(page)
    start(page, "1", TPS)
    form = ppwp()
    values = cell_values(form)
    keys = key_cells(page, values)
    saved_seq(page, 1)
    # Digits plus one advance per cell (the last advance is Ctrl+Enter): nothing more.
    assert keys == sum(len(v) for v in values.values()) + len(values)

    (row,) = station.entries()
    assert (row["seq"], row["tps"], row["form"], row["flags"]) == (1, TPS, "PPWP", [])
    stored = station.show(1)["entry"]
    assert numbers(stored) == numbers(form)
    assert stored["operator"] == OPERATOR and stored["supersedes"] is None

    # The next form starts on the next TPS of the same kelurahan, same form type.
    page.wait_for_selector('input[name="tps"]:focus')
    assert page.input_value('input[name="tps"]') == "9901010001002"
    assert page.is_checked('input[name="form"][value="PPWP"]')


def test_dpr_form_keyed_with_the_keyboard_only(browser: Any, station: Station) -> None:
    page = open_station(browser, station)
    sign_in(page)
    start(page, "2", TPS)
    form = dpr()
    key_cells(page, cell_values(form))
    saved_seq(page, 1)
    stored = station.show(1)["entry"]
    assert numbers(stored) == numbers(form)
    assert station.show(1)["flags"] == []

    # The next TPS opens with the same candidate rows (remembered), so Enter on a party's
    # last candidate goes straight to its total.
    page.keyboard.press("Enter")
    page.wait_for_selector("#screen-form:not([hidden]) input.cell:focus")
    rows = page.eval_on_selector_all(
        "#grid input.cell[name*='.caleg.']", "els => els.map(e => e.name)"
    )
    assert rows == [n for n in cell_values(form) if ".caleg." in n]


def test_flag_appears_while_typing_and_is_confirmed_with_a_note(
    browser: Any, station: Station
) -> None:
    page = open_station(browser, station)
    sign_in(page)
    start(page, "1", TPS)
    form = ppwp(seed=2)
    form["sah"] += 100  # the paper's own mistake: 72 written as 172
    values = cell_values(form)
    before_total = {k: v for k, v in values.items() if k not in ("tidak_sah", "total")}
    key_cells(page, before_total, save=False)
    # R3 is decided by the cells typed; R5 needs the total, not typed yet: not shown.
    page.wait_for_selector('#flag-summary [data-flag="R3"]')
    page.wait_for_selector('#grid tr[data-row="sah"] [data-flag="R3"]')
    assert page.locator('[data-flag="R5"]').count() == 0
    assert page.evaluate("() => document.activeElement.name") == "sah"  # focus not stolen
    page.keyboard.press("Enter")
    for name in ("tidak_sah", "total"):
        page.keyboard.type(values[name])
        if name != "total":
            page.keyboard.press("Enter")
    page.wait_for_selector('#flag-summary [data-flag="R5"]')
    page.keyboard.press("Control+Enter")
    page.wait_for_selector('#confirm[open] [data-flag="R3"]')
    assert page.locator("#confirm-title").inner_text() == "Angka sesuai formulir?"
    page.wait_for_selector('#confirm input[name="note"]:focus')
    page.keyboard.type("Sesuai lembar asli")
    page.keyboard.press("Enter")  # confirms
    saved_seq(page, 1)
    shown = station.show(1)
    assert shown["entry"]["note"] == "Sesuai lembar asli"
    assert [f["rule"] for f in shown["flags"]] == ["R3", "R5"]
    assert numbers(shown["entry"]) == numbers(form)


def test_cancelled_confirmation_saves_nothing_and_clicking_confirm_saves(
    browser: Any, station: Station
) -> None:
    page = open_station(browser, station)
    sign_in(page)
    start(page, "1", TPS)
    form = ppwp(seed=3)
    form["total"] += 1
    key_cells(page, cell_values(form))
    page.wait_for_selector("#confirm[open]")
    page.keyboard.press("Escape")
    page.wait_for_selector("#confirm", state="hidden")
    assert station.entries() == []
    assert page.evaluate("() => document.activeElement.name") == "total"  # the flagged cell
    page.keyboard.press("Control+Enter")
    page.click('#confirm [data-action="confirm"]')
    saved_seq(page, 1)
    assert [e["flags"] for e in station.entries()] == [["R5", "R6"]]


def test_bad_input_is_refused_where_it_happened(browser: Any, station: Station) -> None:
    page = open_station(browser, station)
    sign_in(page)
    page.keyboard.press("1")
    page.keyboard.type("12345")
    page.keyboard.press("Enter")
    page.wait_for_selector('[data-error-for="tps"]:has-text("13")')
    page.keyboard.press("Control+a")
    page.keyboard.type(TPS)
    page.keyboard.press("Enter")
    page.wait_for_selector("#screen-form:not([hidden]) input.cell:focus")
    page.keyboard.type("1x2")  # a letter is refused with a cue; the digits stay
    assert page.input_value('input[name="pemilih_dpt.l"]') == "12"
    page.wait_for_selector("#key-hint:has-text('Hanya angka')")
    page.keyboard.type("34")  # a fourth digit is refused: three boxes, 0..999
    assert page.input_value('input[name="pemilih_dpt.l"]') == "123"
    page.keyboard.press("Escape")  # Esc clears the cell
    assert page.input_value('input[name="pemilih_dpt.l"]') == ""
    page.keyboard.press("Control+Enter")  # an empty cell is not a zero
    page.wait_for_selector('tr[data-row="pemilih_dpt"] .cell-error')
    assert page.evaluate("() => document.activeElement.name") == "pemilih_dpt.l"
    assert station.entries() == []


def test_correction_signs_a_new_entry_that_supersedes(browser: Any, station: Station) -> None:
    page = open_station(browser, station)
    sign_in(page)
    start(page, "1", TPS)
    form = ppwp(seed=4)
    key_cells(page, cell_values(form))
    saved_seq(page, 1)
    page.keyboard.press("F4")
    page.wait_for_selector('#screen-entries input[name="q"]:focus')
    page.keyboard.type(TPS[-6:])
    page.wait_for_selector('#entries-table tr.sel[data-seq="1"]')
    page.keyboard.press("Enter")
    page.wait_for_selector('#entry-title[data-seq="1"]')
    page.keyboard.press("k")  # Koreksi
    page.wait_for_selector("#screen-form:not([hidden]) input.cell:focus")
    assert page.input_value('input[name="suara.1"]') == str(form["suara"]["1"])
    page.focus('input[name="tidak_sah"]')
    page.keyboard.press("Escape")
    page.keyboard.type(str(form["tidak_sah"] + 1))
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    page.keyboard.type(str(form["total"] + 1))
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#confirm[open]")  # R6: total != users total
    page.keyboard.press("Enter")
    saved_seq(page, 2)
    first, second = station.show(1), station.show(2)
    assert second["entry"]["supersedes"] == first["hash"]
    assert second["entry"]["tidak_sah"] == form["tidak_sah"] + 1
    assert numbers(first["entry"]) == numbers(form)  # nothing edited in place
    page.keyboard.press("F4")
    page.wait_for_selector('#entries-table tr.superseded[data-seq="1"]')


def test_draft_survives_reload_browser_crash_and_restart(
    browser: Any, tmp_path: Path, stations: list[Station]
) -> None:
    from .harness import another

    station = Station(tmp_path / "laptop", port=free_port())
    stations.append(station)
    station.start()
    page = open_station(browser, station)
    sign_in(page)
    start(page, "1", TPS)
    form = ppwp(seed=8)
    values = cell_values(form)
    names = list(values)
    half = {k: values[k] for k in names[:10]}
    key_cells(page, half, save=False)
    page.wait_for_selector('#draft-state[data-state="kept"]')

    page.reload()  # 1. reload
    page.wait_for_selector("#screen-form:not([hidden]) input.cell:focus")
    for k, v in half.items():
        assert page.input_value(f'input[name="{k}"]') == v

    other = another(browser)
    browser.close()  # 2. the browser dies (its profile, and local storage, with it)
    page = open_station(other, station)
    page.wait_for_selector("#screen-form:not([hidden])")
    assert page.input_value(f'input[name="{names[9]}"]') == values[names[9]]

    station.kill9()  # 3. the station dies mid-form and is started again
    station.start()
    page.reload()
    page.wait_for_selector("#screen-form:not([hidden]) input.cell:focus")
    assert page.evaluate("() => document.activeElement.name") == names[10]
    rest = {k: values[k] for k in names[10:]}
    key_cells(page, rest)
    saved_seq(page, 1)
    assert numbers(station.show(1)["entry"]) == numbers(form)
    assert station.stop() == 0  # Ctrl-C stops it cleanly


def test_double_save_signs_one_entry(browser: Any, station: Station) -> None:
    page = open_station(browser, station)
    sign_in(page)
    start(page, "1", TPS)
    form = ppwp(seed=9)
    key_cells(page, cell_values(form), save=False)
    draft = page.evaluate("() => document.querySelector('#grid') && window.location.href")
    assert draft
    # A second tab on the same draft.
    other = page.context.new_page()
    other.goto(station.url)
    other.wait_for_selector("#screen-form:not([hidden]) input.cell:focus")
    # A double key press in the first tab...
    page.bring_to_front()
    page.keyboard.press("Control+Enter")
    page.keyboard.press("Control+Enter")
    saved_seq(page, 1)
    # ... and a save from the second tab: answered with the same entry.
    other.bring_to_front()
    other.keyboard.press("Control+Enter")
    other.wait_for_selector('[data-saved-seq="1"]')
    assert "sebelumnya" in other.inner_text("#saved-note")  # "already saved as #1"
    # A retried request (the same body sent again) signs nothing new either.
    retry = page.evaluate(
        """async () => {
          const token = document.querySelector('meta[name="c1-token"]').content;
          const st = await (await fetch('/api/entries', {headers: {'X-C1-Token': token}}))
            .json();
          return st.entries.length;
        }"""
    )
    assert retry == 1
    assert [e["seq"] for e in station.entries()] == [1]


def _http(url: str, method: str = "GET", headers: dict[str, str] | None = None,
          body: bytes | None = None) -> tuple[int, dict[str, str], Any]:  # fmt: skip
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_other_origins_and_hosts_are_refused(
    browser: Any, station: Station, tmp_path: Path
) -> None:
    page = open_station(browser, station)
    sign_in(page)
    start(page, "1", TPS)
    token = page.get_attribute('meta[name="c1-token"]', "content")
    assert token
    draft_url = f"{station.url}api/drafts"
    good = {"Origin": station.url.rstrip("/"), "X-C1-Token": token,
            "Content-Type": "application/json"}  # fmt: skip
    body = json.dumps({"form": "PPWP", "tps": "9901010001005"}).encode()

    # Another web page in the same browser: a page served from another local origin.
    evil = tmp_path / "evil.html"
    evil.write_text("<!doctype html><title>evil</title><p>hi</p>")
    other = browser.new_page()
    other.goto(evil.as_uri())
    got = other.evaluate(
        """async ([url, body]) => {
          const out = {};
          try { await fetch(url + 'api/state'); out.read = 'read'; }
          catch (e) { out.read = 'blocked'; }
          await fetch(url + 'api/drafts', {method: 'POST', mode: 'no-cors', body});
          await fetch(url + 'api/operator', {method: 'POST', mode: 'no-cors',
            body: JSON.stringify({name: 'Penyusup'})});
          return out;
        }""",
        [station.url, body.decode()],
    )
    assert got["read"] == "blocked"  # no CORS: another origin cannot read the station

    status, headers, out = _http(draft_url, "POST", {**good, "Origin": "http://evil.example"}, body)
    assert status == 403 and json.loads(out)["error"]["code"] == "bad_origin"
    status, _, out = _http(draft_url, "POST", {k: v for k, v in good.items() if k != "Origin"},
                           body)  # fmt: skip
    assert status == 403 and json.loads(out)["error"]["code"] == "bad_origin"
    status, _, out = _http(draft_url, "POST", {**good, "X-C1-Token": "guess"}, body)
    assert status == 403 and json.loads(out)["error"]["code"] == "bad_token"
    status, _, out = _http(f"{station.url}api/state")  # no token: not even a read
    assert status == 403 and json.loads(out)["error"]["code"] == "bad_token"
    # DNS rebinding: the right address under another name.
    status, _, out = _http(
        f"{station.url}api/state",
        headers={"Host": f"rebind.example:{station.port}", "X-C1-Token": token},
    )
    assert status == 421 and json.loads(out)["error"]["code"] == "bad_host"
    status, headers, _ = _http(
        draft_url,
        "OPTIONS",
        {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert not any(h.lower().startswith("access-control-") for h in headers)
    status, headers, _ = _http(station.url)
    assert headers["Cross-Origin-Resource-Policy"] == "same-origin"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]

    # Nothing changed: the operator, the draft and the (empty) store are as they were.
    status, _, out = _http(f"{station.url}api/state", headers={"X-C1-Token": token})
    state = json.loads(out)
    assert state["operator"] == OPERATOR and state["draft"]["tps"] == TPS
    assert station.entries() == []
    # The station's own page still works.
    page.bring_to_front()
    key_cells(page, cell_values(ppwp(seed=12)))
    saved_seq(page, 1)
    assert [e["tps"] for e in station.entries()] == [TPS]


def test_scans_attached_from_the_folder_a_file_and_a_drop_are_shown(
    browser: Any, tmp_path: Path, stations: list[Station]
) -> None:
    folder = tmp_path / "scanner"
    folder.mkdir()
    page1, page2, page3 = png(40, 30, (200, 30, 30)), png(30, 40, (30, 200, 30)), png(20, 20)
    (folder / "old.png").write_bytes(png(10, 10))
    (folder / "scan-0001.png").write_bytes(page1)  # newest
    (tmp_path / "pindai2.png").write_bytes(page2)
    (tmp_path / "bukan-gambar.png").write_text("this is text, not a scan")
    station = Station(tmp_path / "laptop", extra=("--scans", str(folder)))
    stations.append(station)
    station.start()
    page = open_station(browser, station)
    choosers = FileChoosers(page)
    sign_in(page)
    start(page, "1", TPS)

    page.keyboard.press("Control+i")  # the scanner's folder, newest first
    page.wait_for_selector('#inbox[open] li.sel[data-file="scan-0001.png"]')
    page.keyboard.press("Enter")
    h1 = hashlib.sha256(page1).hexdigest()
    img = page.wait_for_selector(f'#scan-view img[data-scan-hash="{h1}"]')
    page.wait_for_function("(i) => i.complete && i.naturalWidth === 40", arg=img)
    assert page.evaluate("() => document.activeElement.name") == "pemilih_dpt.l"  # back

    choosers.open("Control+o").set_files(str(tmp_path / "pindai2.png"))  # the file picker
    h2 = hashlib.sha256(page2).hexdigest()
    page.wait_for_selector(f'#scan-view img[data-scan-hash="{h2}"]')

    # Dropped onto the scan pane (as from a file manager).
    page.evaluate(
        """(bytes) => {
          const dt = new DataTransfer();
          dt.items.add(new File([new Uint8Array(bytes)], 'drop.png', {type: 'image/png'}));
          document.querySelector('#scan-pane').dispatchEvent(
            new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
        }""",
        list(page3),
    )
    h3 = hashlib.sha256(page3).hexdigest()
    page.wait_for_selector(f'#scan-view img[data-scan-hash="{h3}"]')

    # Keyboard zoom, rotate, page switching, while the cell keeps the focus.
    page.focus('input[name="pemilih_dpt.l"]')
    page.keyboard.press("+")
    page.keyboard.press("*")
    pos = page.locator("#scan-pos")
    assert (pos.get_attribute("data-zoom"), pos.get_attribute("data-rot")) == ("125", "90")
    page.keyboard.press("PageDown")  # wraps to page 1
    assert pos.get_attribute("data-page") == "1"
    page.wait_for_selector(f'#scan-view img[data-scan-hash="{h1}"]')
    assert page.input_value('input[name="pemilih_dpt.l"]') == ""  # no key reached the cell

    # A file that is not an image: a clear message where scans are, nothing attached.
    choosers.open("Control+o").set_files(str(tmp_path / "bukan-gambar.png"))
    page.wait_for_selector('#scan-pane [data-error-for="scans"]:has-text("JPEG, PNG")')

    page.focus('input[name="pemilih_dpt.l"]')
    key_cells(page, cell_values(ppwp(seed=10)))
    saved_seq(page, 1)
    assert station.show(1)["entry"]["scans"] == [h1, h2, h3]
    for h in (h1, h2, h3):
        assert (station.data / "blobs" / h[:2] / h).is_file()

    # Opened read-only from the list, with its scans.
    page.keyboard.press("F4")
    page.wait_for_selector('#entries-table tr.sel[data-seq="1"]')
    page.keyboard.press("Enter")
    page.wait_for_selector(f'#entry-scans img[data-scan-hash="{h1}"]')
    assert page.locator("#entry-grid input.cell[name][readonly]").count() == 28
    # The scanner folder marks the page as used.
    page.keyboard.press("F2")
    page.wait_for_selector('input[name="form"]:focus')
    page.keyboard.press("Enter")  # the form type stays PPWP; on to the TPS (the next one)
    page.keyboard.press("Enter")
    page.wait_for_selector("#screen-form:not([hidden]) input.cell:focus")
    page.keyboard.press("Control+i")
    page.wait_for_selector('#inbox[open] li.used[data-file="scan-0001.png"]')
    page.keyboard.press("Escape")
