"""Operator's station benchmark: a real `c1client ui` and Debian's headless Chromium.

Prints three figures, each next to its baseline measured in the same run:

1. keystrokes  — keys pressed to key one full PPWP form (digits, the advance after each cell,
                 Ctrl+Enter) against the minimum: the digits plus one advance per cell (goal:
                 equal). The keys around a form (Enter to start the next TPS, Enter to confirm
                 flags) are shown apart.
2. flag latency — from a keystroke (keydown in the page) to its flag being shown (the flag
                 element in the page), p50/p99 over --trials keystrokes that add or remove a
                 flag (goal: p99 < 50 ms); baseline: the bare check request from the same page
                 (fetch + server check + JSON), p50/p99.
3. keyer       — a scripted keyer at --rate keystrokes/s keys --forms PPWP forms (realistic,
                 some with paper mistakes that need the "Angka sesuai formulir?" confirmation;
                 it looks up only to answer that question), heads down, never waiting for the
                 page otherwise: time per form against keystrokes / rate (goal: the UI adds
                 under 5%). Then every stored entry is compared with what was keyed.

    .venv/bin/python bench/ui.py [--forms 20] [--rate 3] [--trials 200]

Needs /usr/bin/chromium (Debian's; `make browser`) and the dev extras (playwright).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from client.ui import layout  # noqa: E402
from hub.shared import generator  # noqa: E402
from tests.ui.harness import Station, browser_missing, cell_values, chromium  # noqa: E402

TPS0 = "9901010001001"


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def forms(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        tps = f"{TPS0[:10]}{i + 1:03d}"
        f = generator.make_form(rng, tps, "PPWP", operator="Operator Bench")
        if rng.random() < 0.15:
            generator.add_mistake(rng, f)
        out.append(f)
    return out


def sign_in(page: Any, station: Station) -> None:
    page.goto(station.url)
    page.wait_for_selector("body[data-ready]")
    page.wait_for_selector('input[name="operator"]:focus')
    page.keyboard.type("Operator Bench")
    page.keyboard.press("Enter")
    page.wait_for_selector('input[name="form"]:focus')


def key_plan(form: dict[str, Any]) -> list[str]:
    """The keys for one PPWP form, in the page's cell order."""
    values = cell_values(form)
    names = layout.cell_names("PPWP", layout.default_rows("PPWP", form["tps"]))
    keys: list[str] = []
    for i, n in enumerate(names):
        keys += list(values[n])
        keys.append("Enter" if i < len(names) - 1 else "Control+Enter")
    return keys


def figure_keystrokes(form: dict[str, Any]) -> tuple[int, int]:
    values = cell_values(form)
    minimum = sum(len(v) for v in values.values()) + len(values)
    return len(key_plan(form)), minimum


def latency(page: Any, trials: int) -> tuple[list[float], list[float]]:
    """keydown -> flag shown, and the bare check request, in milliseconds (page clock)."""
    page.keyboard.press("1")
    page.keyboard.type(TPS0[:10] + "900")  # a TPS of its own (not keyed by the keyer)
    page.keyboard.press("Enter")
    page.wait_for_selector("#screen-form:not([hidden]) input.cell:focus")
    f = generator.make_form(random.Random(99), TPS0[:10] + "900", "PPWP", operator="x")
    values = cell_values(f)
    for name, v in values.items():
        page.fill(f'input[name="{name}"]', v)
    page.dispatch_event('input[name="total"]', "input")
    page.wait_for_selector("#flag-summary li.ok")
    page.evaluate(
        """() => {
          window.__c1 = {down: 0, shown: []};
          document.addEventListener('keydown', () => { window.__c1.down = performance.now(); },
                                    true);
          new MutationObserver(() => {
            const n = document.querySelectorAll('#flag-summary [data-flag]').length;
            window.__c1.shown.push([performance.now(), n]);
          }).observe(document.querySelector('#flag-summary ul'), {childList: true});
        }"""
    )
    page.focus('input[name="total"]')
    total = values["total"]
    out: list[float] = []
    for i in range(trials):
        # Alternate: a wrong last digit adds R5/R6; the right one removes them.
        digit = total[-1] if i % 2 else str((int(total[-1]) + 1) % 10)
        want_flags = i % 2 == 0
        page.evaluate("() => { window.__c1.shown = []; }")
        page.keyboard.press("Backspace")
        page.wait_for_timeout(30)
        page.evaluate("() => { window.__c1.shown = []; }")
        page.keyboard.press(digit)
        sel = "#flag-summary [data-flag]" if want_flags else "#flag-summary li.ok"
        page.wait_for_selector(sel)
        t = page.evaluate(
            """(want) => { const s = window.__c1.shown.find(([_, n]) => want ? n > 0 : n === 0);
                           return s ? s[0] - window.__c1.down : null; }""",
            want_flags,
        )
        if t is not None:
            out.append(t)
    draft = page.evaluate("() => fetch('/api/state', {headers: {'X-C1-Token': document"
                          ".querySelector('meta[name=\"c1-token\"]').content}})"
                          ".then(r => r.json()).then(s => s.draft.id)")  # fmt: skip
    base: list[float] = page.evaluate(
        """async ([id, cells, n]) => {
          const token = document.querySelector('meta[name="c1-token"]').content;
          const out = [];
          for (let i = 0; i < n; i++) {
            const t0 = performance.now();
            const r = await fetch(`/api/drafts/${id}/check`, {method: 'POST',
              headers: {'X-C1-Token': token, 'Content-Type': 'application/json'},
              body: JSON.stringify({rev: 100000 + i, cells, rows: {suara: ['1','2','3']}})});
            await r.json();
            out.push(performance.now() - t0);
          }
          return out;
        }""",
        [draft, values, trials],
    )
    page.evaluate(
        """(id) => fetch(`/api/drafts/${id}/discard`, {method: 'POST', headers: {'X-C1-Token':
             document.querySelector('meta[name="c1-token"]').content}})""",
        draft,
    )  # the timing form is not saved
    page.reload()
    page.wait_for_selector('input[name="form"]:focus')
    return out, base


def keyer(page: Any, batch: list[dict[str, Any]], rate: float) -> dict[str, Any]:
    """Key ``batch`` at ``rate`` keys/s on a fixed schedule; returns timings."""
    gap = 1.0 / rate
    starts: list[float] = []
    keys_per_form: list[int] = []
    waited = 0.0
    t_next = time.monotonic()

    def press(key: str) -> None:
        nonlocal t_next
        now = time.monotonic()
        if now < t_next:
            time.sleep(t_next - now)
        page.keyboard.press(key)
        t_next += gap  # a fixed schedule: a late key is pressed at once, the next on time

    for i, f in enumerate(batch):
        starts.append(max(t_next, time.monotonic()))
        plan = ["1", *TPS0, "Enter"] if i == 0 else ["Enter"]  # next TPS is offered: accept
        plan += key_plan(f)
        for k in plan:
            press(k)
        n_keys = len(plan)
        if _flags(f):  # heads up only for the flag question: wait until it is shown
            page.wait_for_selector("#confirm[open]")
            late = time.monotonic() - t_next
            if late > 0:
                waited += late
                t_next += late
            press("Enter")
            n_keys += 1
        keys_per_form.append(n_keys)
        print(f"  form {i + 1}/{len(batch)}: {n_keys} keys", file=sys.stderr, flush=True)
    page.wait_for_selector(f'[data-saved-seq="{len(batch)}"]', timeout=60_000)
    end = max(time.monotonic(), t_next)  # the last form ends when it is saved
    bounds = [*starts[1:], end]
    per_form = [b - a for a, b in zip(starts, bounds, strict=True)]
    return {"per_form": per_form, "keys": keys_per_form, "waited": waited}


def _flags(form: dict[str, Any]) -> list[Any]:
    from hub.protocol import entry, rules

    return rules.check(entry.parse(form))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--forms", type=int, default=20)
    ap.add_argument("--rate", type=float, default=3.0, help="keystrokes per second")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seed", type=int, default=2024)
    args = ap.parse_args()
    why = browser_missing()
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    batch = forms(args.forms, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        station = Station(Path(tmp) / "laptop").start()
        try:
            with chromium() as ctx:
                page = ctx.new_page()
                sign_in(page, station)
                lat, base = latency(page, args.trials)
                print(f"latency: {len(lat)} trials done", file=sys.stderr, flush=True)
                page.wait_for_selector('input[name="form"]:focus')
                res = keyer(page, batch, args.rate)
            stored = station.entries()
            problems = []
            for f, e in zip(batch, stored, strict=False):
                got = station.show(e["seq"])["entry"]
                if {k: got[k] for k in f if k not in ("operator", "note", "scans")} != {
                    k: f[k] for k in f if k not in ("operator", "note", "scans")
                }:
                    problems.append(e["seq"])
            if len(stored) != len(batch):
                problems.append(f"{len(stored)} stored of {len(batch)}")
        finally:
            station.close()

    pressed, minimum = figure_keystrokes(batch[0])
    ideal = [k / args.rate for k in res["keys"]]
    mean_form = statistics.mean(res["per_form"])
    mean_ideal = statistics.mean(ideal)
    added = (mean_form - mean_ideal) / mean_ideal * 100
    flagged = sum(1 for f in batch if _flags(f))
    print(f"c1client ui benchmark ({args.forms} PPWP forms, {args.rate:g} keys/s, "
          f"{args.trials} latency trials)")  # fmt: skip
    print()
    print("1. keystrokes for one full PPWP form (first form of the run)")
    print(f"   pressed {pressed:5d}    minimum (digits + one advance per cell) {minimum:5d}"
          f"    {'EQUAL' if pressed == minimum else 'MORE'}")  # fmt: skip
    print("   around a form: +1 Enter to start the next TPS; +1 Enter to confirm a flagged form")
    print()
    print("2. keystroke -> flag shown (ms)")
    print(f"   UI         p50 {pct(lat, 50):6.1f}   p99 {pct(lat, 99):6.1f}   "
          f"(n={len(lat)}; goal p99 < 50)")  # fmt: skip
    print(
        f"   baseline   p50 {pct(base, 50):6.1f}   p99 {pct(base, 99):6.1f}   "
        "(bare check request from the page)"
    )
    print()
    print(f"3. scripted keyer at {args.rate:g} keys/s ({flagged} of {args.forms} forms flagged)")
    print(f"   time per form      {mean_form:7.2f} s")
    print(f"   keystrokes / rate  {mean_ideal:7.2f} s  (baseline)")
    print(f"   added by the UI    {added:6.2f} %   (goal < 5%; waited for the page "
          f"{res['waited']:.2f} s in all)")  # fmt: skip
    print(
        f"   stored entries equal to what was keyed: "
        f"{'all ' + str(len(batch)) if not problems else 'NO: ' + repr(problems)}"
    )
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
