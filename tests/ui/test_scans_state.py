"""The entries list's scans state (``data-scans``, docs/ui.md): an entry with a scanned page
shows "pindaian menunggu" until the hub holds the page, then "pindaian lengkap", without a
reload, keyboard only, with a real hub and the station's own background sync."""

from __future__ import annotations

import hashlib
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.integration.procs import HubProc, free_port
from tests.shared.images import png

from .harness import Station, cell_values, key_cells
from .test_station import TPS, open_station, ppwp, saved_seq, sign_in, start

ROW = '#entries-table tr[data-seq="1"]'


def hub_holds(hub: HubProc, digest: str) -> bytes | None:
    try:
        with urllib.request.urlopen(f"{hub.url}/v1/blobs/{digest}", timeout=10) as r:
            return bytes(r.read())
    except (urllib.error.URLError, OSError):
        return None


def test_scans_waiting_until_the_hub_holds_the_page_then_complete(
    browser: Any, tmp_path: Path, stations: list[Station]
) -> None:
    folder = tmp_path / "scanner"
    folder.mkdir()
    scan = png(60, 40, (30, 30, 200))
    (folder / "c1-halaman-1.png").write_bytes(scan)
    digest = hashlib.sha256(scan).hexdigest()
    hub = HubProc(tmp_path / "hub", port=free_port())  # the room's hub, not up yet
    station = Station(tmp_path / "laptop", sync=True,
                      extra=("--hub", hub.url, "--scans", str(folder)))  # fmt: skip
    stations.append(station)
    station.start()
    try:
        page = open_station(browser, station)
        sign_in(page)
        start(page, "1", TPS)
        page.keyboard.press("Control+i")  # the scanner's folder
        page.wait_for_selector('#inbox[open] li.sel[data-file="c1-halaman-1.png"]')
        page.keyboard.press("Enter")
        page.wait_for_selector(f'#scan-view img[data-scan-hash="{digest}"]')
        key_cells(page, cell_values(ppwp(seed=31)))
        saved_seq(page, 1)

        page.keyboard.press("F4")  # this laptop's entries
        row = page.wait_for_selector(f'{ROW}[data-scans="waiting"]')
        assert row is not None and "pindaian menunggu" in row.inner_text()
        assert page.get_attribute(ROW, "data-state") == "local"
        page.wait_for_timeout(4000)  # a refresh of the list later: still waiting, no hub yet
        assert page.get_attribute(ROW, "data-scans") == "waiting"

        page.evaluate("() => { window.c1NotReloaded = true; }")
        hub.start()
        hub.approve("Meja 1")
        # No key, no reload from here: the list moves on by itself. Each time it is read it
        # says "waiting" while the hub lacks the page; once it says "complete" the hub has it.
        deadline = time.monotonic() + 120
        while page.get_attribute(ROW, "data-scans") != "complete":
            assert page.get_attribute(ROW, "data-scans") == "waiting"
            assert time.monotonic() < deadline, "the entry never showed pindaian lengkap"
            page.wait_for_timeout(200)
        assert hub_holds(hub, digest) == scan
        assert "pindaian lengkap" in page.inner_text(ROW)
        assert page.get_attribute(ROW, "data-state") in ("at_hub", "confirmed")
        assert page.evaluate("() => window.c1NotReloaded === true")  # the same page, no reload
        assert page.evaluate("() => document.activeElement.name") == "q"  # focus untouched
    finally:
        hub.stop()
