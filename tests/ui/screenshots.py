"""Regenerate the station's screenshots in docs/img/ (Indonesian), as an operator sees them.

    .venv/bin/python -m tests.ui.screenshots

A real hub (the laptop left pending, so the comparison code shows), a real `c1client ui`
with the 2024 master when it is beside the repository, a scanned page (a C.Hasil-like page
drawn by the same browser), and Debian's chromium at 1366x768.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

from hub.shared import generator
from tests.integration.procs import C1CLIENT, HubProc, run

from .harness import Station, cell_values, chromium, key_cells

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "docs" / "img"
WILAYAH = REPO.parent / "shared" / "data" / "wilayah-2024.json"
TPS = "3171011001001" if WILAYAH.exists() else "9901010001001"


def paper(form: dict[str, Any]) -> str:
    """A page that looks like a scanned C.Hasil: the form's numbers in hand-written boxes."""

    def row(label: str, *values: int) -> str:
        boxes = "".join(f"<td class=n>{v}</td>" for v in values)
        return f"<tr><td>{label}</td>{boxes}</tr>"

    lpj = [("1. Pemilih DPT", "pemilih_dpt"), ("2a. Pengguna DPT", "pengguna_dpt"),
           ("2b. Pengguna DPTb", "pengguna_dptb"), ("2c. Pengguna DPK", "pengguna_dpk"),
           ("2d. Jumlah pengguna", "pengguna_total")]  # fmt: skip
    rows = "".join(row(lab, *(form[f][k] for k in "lpj")) for lab, f in lpj)
    ss = form["surat_suara"]
    votes = "".join(row(f"Paslon {no}", v) for no, v in form["suara"].items())
    return f"""<!doctype html><style>
      body {{ margin: 0; background: #e9e4d8; font: 15px serif; color: #222; }}
      .p {{ margin: 18px; padding: 22px 28px; background: #fbf8f0; border: 1px solid #aaa;
            transform: rotate(-0.6deg); box-shadow: 2px 3px 8px #999; }}
      h1 {{ font: bold 17px sans-serif; text-align: center; margin: 4px 0 10px; }}
      table {{ border-collapse: collapse; width: 100%; margin-bottom: 10px; }}
      td {{ border: 1px solid #555; padding: 3px 6px; }}
      td.n {{ width: 70px; text-align: center; font: 22px 'DejaVu Serif', cursive;
              color: #1b2a8a; }}
      .s {{ font: bold 13px sans-serif; background: #ddd; }}
    </style><div class=p><h1>MODEL C.HASIL-PPWP &mdash; TPS {form["tps"][-3:]}</h1>
    <table><tr><td class=s colspan=4>I. DATA PEMILIH DAN PENGGUNA HAK PILIH (L / P / J)</td>
    </tr>{rows}</table>
    <table><tr><td class=s colspan=2>II. PENGGUNAAN SURAT SUARA</td></tr>
    {row("Diterima", ss["diterima"])}{row("Digunakan", ss["digunakan"])}
    {row("Rusak", ss["rusak"])}{row("Sisa", ss["sisa"])}</table>
    <table><tr><td class=s colspan=4>III. DISABILITAS</td></tr>
    {row("Disabilitas", *(form["disabilitas"][k] for k in "lpj"))}</table>
    <table><tr><td class=s colspan=2>IV. PEROLEHAN SUARA</td></tr>{votes}</table>
    <table><tr><td class=s colspan=2>V. SUARA SAH DAN TIDAK SAH</td></tr>
    {row("A. Sah", form["sah"])}{row("B. Tidak sah", form["tidak_sah"])}
    {row("C. Jumlah", form["total"])}</table></div>"""


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="c1-shots-"))
    form = generator.make_form(random.Random(11), TPS, "PPWP", operator="Siti Rahmawati")
    form["sah"] += 100  # the paper's own mistake: a flag to show
    hub = HubProc(tmp / "hub").start()
    folder = tmp / "pindaian"
    folder.mkdir()
    extra = ["--hub", hub.url, "--scans", str(folder)]
    if WILAYAH.exists():
        extra += ["--wilayah", str(WILAYAH)]
    station = Station(tmp / "laptop", name="Meja 3", sync=True, extra=tuple(extra))
    try:
        with chromium() as ctx:
            scan = ctx.new_page()
            scan.set_viewport_size({"width": 620, "height": 880})
            scan.set_content(paper(form))
            (folder / "C-HASIL-DPD-0007.png").write_bytes(scan.screenshot(clip={
                "x": 0, "y": 0, "width": 620, "height": 300}))  # an older page  # fmt: skip
            (folder / "C-HASIL-PPWP-0001.png").write_bytes(scan.screenshot())  # the newest
            scan.close()
            # Two earlier entries, one at the hub already, for the list.
            earlier = [generator.make_form(random.Random(s), f"{TPS[:10]}00{s}", "PPWP",
                                           operator="Budi Santoso") for s in (2, 3)]  # fmt: skip
            src = tmp / "earlier.jsonl"
            src.write_text("".join(json.dumps(f) + "\n" for f in earlier))
            run(C1CLIENT, "enter", "--data", station.data, str(src))
            station.start()
            page = ctx.new_page()
            page.goto(station.url)
            page.wait_for_selector("body[data-ready]")
            page.keyboard.type("Siti Rahmawati")
            page.keyboard.press("Enter")
            page.wait_for_selector('input[name="form"]:focus')
            page.keyboard.press("1")
            page.keyboard.type(TPS[:-3] if WILAYAH.exists() else TPS)
            if WILAYAH.exists():
                page.wait_for_timeout(300)
                page.keyboard.type(TPS[-3:])
            page.wait_for_timeout(500)
            page.screenshot(path=str(OUT / "ui-start.png"))
            page.keyboard.press("Enter")
            page.wait_for_selector("#screen-form:not([hidden]) input.cell:focus")
            page.keyboard.press("Control+i")
            page.wait_for_selector("#inbox[open] li.sel")
            page.wait_for_timeout(200)
            page.screenshot(path=str(OUT / "ui-inbox.png"))
            page.keyboard.press("Enter")
            page.wait_for_selector("#scan-view img[data-scan-hash]")
            values = cell_values(form)
            names = list(values)
            key_cells(page, {k: values[k] for k in names[: names.index("tidak_sah")]}, save=False)
            page.keyboard.press("Enter")
            page.keyboard.type(values["tidak_sah"])
            page.wait_for_selector('#flag-summary [data-flag="R3"]')
            page.wait_for_timeout(300)
            page.screenshot(path=str(OUT / "ui-form.png"))
            page.keyboard.press("Enter")
            page.keyboard.type(values["total"])
            page.keyboard.press("Control+Enter")
            page.wait_for_selector("#confirm[open]")
            page.keyboard.type("Sesuai lembar asli")
            page.wait_for_timeout(200)
            page.screenshot(path=str(OUT / "ui-confirm.png"))
            page.keyboard.press("Enter")
            page.wait_for_selector('[data-saved-seq="3"]')
            page.keyboard.press("F9")
            page.wait_for_selector("[data-code]:not([data-code=''])", timeout=60_000)
            page.wait_for_timeout(300)
            page.screenshot(path=str(OUT / "ui-connection.png"))
            page.keyboard.press("F4")
            page.wait_for_selector('#entries-table tr[data-seq="3"]')
            page.wait_for_timeout(300)
            page.screenshot(path=str(OUT / "ui-entries.png"))
    finally:
        station.close()
        hub.stop()
    for p in sorted(OUT.glob("ui-*.png")):
        print(p.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
