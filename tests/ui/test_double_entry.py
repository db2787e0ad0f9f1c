"""Double entry through the station: the hub's work list, a blind second keying, the hub's
verdict, and a conflict corrected from the work list (real hub and laptops on 127.0.0.1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.integration.procs import C1CLIENT, HubProc, run, wait_for

from .harness import Station, cell_values, key_cells
from .test_station import TPS, numbers, open_station, ppwp, saved_seq, sign_in


def test_blind_second_keying_and_a_correction_from_the_work_list(
    browser: Any, tmp_path: Path, stations: list[Station]
) -> None:
    hub = HubProc(tmp_path / "hub").start()
    try:
        # Laptop A keys two forms with `c1client enter` and syncs; the coordinator approves it.
        a = tmp_path / "a"
        run(C1CLIENT, "init", "--data", a, "--name", "Meja A")
        first, other = ppwp(seed=20), ppwp(seed=21, tps="9901010001002")
        src = tmp_path / "a.jsonl"
        src.write_text(json.dumps(first) + "\n" + json.dumps(other) + "\n")
        run(C1CLIENT, "enter", "--data", a, str(src))
        run(C1CLIENT, "sync", "--data", a, "--once", "--hub", hub.url)
        hub.approve("Meja A")

        # Laptop B runs the station, syncing with the hub in the background.
        b = Station(tmp_path / "b", name="Meja B", sync=True, extra=("--hub", hub.url))
        stations.append(b)
        b.start()
        hub.approve("Meja B")
        page = open_station(browser, b)
        sign_in(page, "Budi Santoso")
        page.keyboard.press("F8")
        page.wait_for_selector(f'#work-second tr[data-tps="{TPS}"]')
        assert page.locator("#work-second tr[data-tps]").count() == 2
        page.keyboard.press("Enter")  # the first item: TPS ...001
        page.wait_for_selector("#screen-form:not([hidden]) input.cell:focus")
        # Blind: no number of the first keying is on the page.
        assert page.eval_on_selector_all("#grid input.cell", "els => els.filter(e => e.value)"
                                         ".length") == 0  # fmt: skip
        assert "buta" in page.inner_text("#form-mode")
        key_cells(page, cell_values(first))
        saved_seq(page, 1)
        page.wait_for_selector('#saved-note[data-hub-status="verified"]', timeout=60_000)

        # The second one is keyed differently: the station says so before saving.
        page.keyboard.press("F8")
        page.wait_for_selector('#work-second tr.sel[data-tps="9901010001002"]')
        page.keyboard.press("Enter")
        page.wait_for_selector("#screen-form:not([hidden]) input.cell:focus")
        wrong = dict(other, suara=dict(other["suara"], **{"1": other["suara"]["1"] + 10}))
        wrong["sah"] += 10
        wrong["total"] += 10  # consistent, but not what the paper says: R6 only
        key_cells(page, cell_values(wrong))
        page.wait_for_selector('#confirm[open] #confirm-verify[data-verify="differs"]')
        page.keyboard.press("Enter")
        saved_seq(page, 2)
        page.wait_for_selector('#saved-note[data-hub-status="conflict"]', timeout=60_000)

        # Corrected from the work list: keyed again, right this time; it supersedes the
        # reading that disagrees, and the hub shows the TPS verified.
        page.keyboard.press("F8")
        page.wait_for_selector('#work-correction tr.sel[data-tps="9901010001002"]')
        page.keyboard.press("Enter")
        page.wait_for_selector("#screen-form:not([hidden]) input.cell:focus")
        key_cells(page, cell_values(other))
        saved_seq(page, 3)
        page.wait_for_selector('#saved-note[data-hub-status="verified"]', timeout=60_000)

        shown = b.show(3)
        assert shown["entry"]["supersedes"] == b.show(2)["hash"]
        assert numbers(shown["entry"]) == numbers(other)
        wait_for(lambda: hub.status()["tps"] == {"single": 0, "verified": 2, "conflict": 0},
                 60, "both TPS verified at the hub")  # fmt: skip
        assert [e["state"] for e in b.entries()] == ["at_hub"] * 3
    finally:
        hub.stop()
