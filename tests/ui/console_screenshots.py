"""Regenerate the console's screenshots in docs/img/ (Indonesian), as a coordinator sees them.

    .venv/bin/python -m tests.ui.console_screenshots

A real national stand-in and a room hub with the 2024 master when it is beside the
repository, four real laptops (two typing the same forms, a few readings disagreeing, one
laptop pending, one data folder copied so that it forks), and Debian's chromium at 1366x768.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from tests.integration.procs import C1CLIENT, Procs, enter, run, sync, wait_for
from tests.shared.images import png

from .harness import chromium

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "docs" / "img"
WILAYAH = REPO.parent / "shared" / "data" / "wilayah-2024.json"


def forms(n: int, seed: int) -> list[dict[str, object]]:
    extra = ["--wilayah", str(WILAYAH), "--region", "3171"] if WILAYAH.exists() else []
    out = run(C1CLIENT, "generate", "--count", str(n), "--seed", str(seed), *extra).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="c1-console-shots-") as d:
        procs = Procs(Path(d))
        try:
            shoot(procs)
        finally:
            procs.close()
    return 0


def shoot(procs: Procs) -> None:
    master = ("--wilayah", str(WILAYAH)) if WILAYAH.exists() else ()
    root = procs.hub("pusat", national=True).start()
    room = procs.hub("hotel-a-r2", extra=("--upstream", root.url, *master),
                     display_name="Hotel A R.2").start()  # fmt: skip
    root.approve("Hotel A R.2")
    first = forms(40, 3)
    second = [json.loads(json.dumps(f)) for f in first[:24]]
    for f in second[:3]:  # three readings that disagree with the paper's first reading
        suara = f["suara"]
        assert isinstance(suara, dict)
        no = sorted(suara)[0]
        suara[no] = (suara[no] + 10) % 1000
    for f in second:
        f["operator"] = "Siti"
    # a form whose paper adds up wrongly, typed as written and confirmed, with its scan
    flagged = first[30]
    flagged["sah"] = int(str(flagged["sah"])) + 1
    flagged["note"] = "sesuai formulir kertas"
    scan = procs.tmp / "c-hasil-hal1.png"
    scan.write_bytes(png(600, 840, (236, 234, 226)))
    flagged["scans"] = [str(scan)]
    lines = {"meja1": first, "meja2": second, "meja4": forms(3, 13), "meja3": forms(5, 9)}
    for name, fs in lines.items():
        data = procs.laptop(name)
        enter(data, [json.dumps(f) for f in fs])
        sync(data, room.url)
        if name != "meja3":
            room.approve(name)
    # a copied data folder: the copy and the original each type a different next form
    copy = procs.tmp / "meja4-salinan"
    shutil.copytree(procs.tmp / "meja4", copy)
    enter(procs.tmp / "meja4", [json.dumps(forms(1, 21)[0])])
    enter(copy, [json.dumps(forms(1, 22)[0])])
    sync(procs.tmp / "meja4", room.url)
    run(C1CLIENT, "sync", "--data", copy, "--hub", room.url, "--once", check=False)
    wait_for(lambda: room.status()["forks"] == 1, 60, "the fork")
    wait_for(lambda: room.status()["upstream"]["backlog"] == 0, 120, "upstream to catch up")

    with chromium() as ctx:
        page = ctx.new_page()
        page.goto(room.url + "/")
        page.wait_for_selector('#live[data-live="on"]')
        page.screenshot(path=str(OUT / "console-room.png"), full_page=False)
        pending = page.locator('tr[data-state="pending"]').first
        pending.focus()
        page.keyboard.press("a")
        page.wait_for_selector("dialog#confirm[open]")
        page.screenshot(path=str(OUT / "console-approve.png"))
        page.keyboard.press("Escape")
        page.locator("tr[data-conflict] a").first.focus()
        page.keyboard.press("Enter")
        page.wait_for_selector("table.side")
        page.screenshot(path=str(OUT / "console-conflict.png"), full_page=True)
        page.goto(room.url + "/console/flags")
        page.screenshot(path=str(OUT / "console-flags.png"))
        page.locator(f'tr[data-flagged$=":{flagged["tps"]}"] a[data-open]').first.focus()
        page.keyboard.press("Enter")
        page.wait_for_selector("[data-scanpane] img.scanpage")
        page.screenshot(path=str(OUT / "console-entry.png"))
        page.goto(room.url + "/console/progress")
        page.screenshot(path=str(OUT / "console-progress.png"))
        page.goto(room.url + "/console/forks")
        page.screenshot(path=str(OUT / "console-forks.png"))
        page.goto(room.url + "/?lang=en")
        page.screenshot(path=str(OUT / "console-room-en.png"))
    # the same hub under another name (as from another machine): read-only
    with chromium(args=("--host-resolver-rules=MAP hub.lan 127.0.0.1",)) as ctx:
        page = ctx.new_page()
        page.goto(room.url.replace("127.0.0.1", "hub.lan") + "/")
        page.wait_for_selector('[data-mode="read-only"]')
        page.screenshot(path=str(OUT / "console-read-only.png"))
    print(f"screenshots in {OUT}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
