"""Real `c1client ui` processes and a real headless Chromium, for the browser tests and
bench/ui.py.

The browser is Debian's ``chromium`` (``/usr/bin/chromium``, or ``$C1_CHROMIUM``) driven by
Playwright for Python through its executable path; Playwright's own browser download is never
used. Each browser gets a fresh user-data-dir.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from tests.integration.procs import C1CLIENT, run, terminate

CHROMIUM = os.environ.get("C1_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
VIEWPORT = {"width": 1366, "height": 768}  # the usual laptop screen


def browser_missing() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the Python package 'playwright' is not installed (pip install -e '.[dev]')"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"{CHROMIUM} not found (Debian: apt-get install chromium; `make browser`)"
    return None


@contextmanager
def chromium(
    lang: str = "id-ID", executable: str = CHROMIUM, args: tuple[str, ...] = ()
) -> Iterator[Any]:
    """A fresh headless Chromium context (Playwright ``BrowserContext``); ``another(ctx)``
    starts a second, independent browser from the same Playwright."""
    from playwright.sync_api import sync_playwright

    profiles: list[str] = []
    try:
        with sync_playwright() as pw:
            ctx = _launch(pw, lang, profiles, executable, args)
            try:
                yield ctx
            finally:
                for c in [ctx, *getattr(ctx, "_c1_others", [])]:
                    with suppress(Exception):
                        c.close()
    finally:
        for p in profiles:
            shutil.rmtree(p, ignore_errors=True)


def _launch(
    pw: Any, lang: str, profiles: list[str], executable: str = CHROMIUM, args: tuple[str, ...] = ()
) -> Any:
    profile = tempfile.mkdtemp(prefix="c1-chromium-")
    profiles.append(profile)
    ctx = pw.chromium.launch_persistent_context(
        profile, executable_path=executable, headless=True, args=[*LAUNCH_ARGS, *args],
        viewport=VIEWPORT, locale=lang, accept_downloads=False,
    )  # fmt: skip
    ctx._c1_launch = lambda: _launch(pw, lang, profiles, executable, args)
    ctx._c1_others = []
    return ctx


def another(ctx: Any) -> Any:
    """A second browser (its own profile), closed with the first."""
    other = ctx._c1_launch()
    ctx._c1_others.append(other)
    return other


class Station:
    """A ``c1client ui`` process on 127.0.0.1 over one laptop data folder."""

    def __init__(self, data: Path, *, name: str = "Meja 1", extra: tuple[str, ...] = (),
                 port: int = 0, sync: bool = False):  # fmt: skip
        self.data = data
        self.extra = extra
        self.port = port
        self.sync = sync
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.log = data.parent / f"{data.name}-ui.log"
        if not (data / "node.key").exists():
            run(C1CLIENT, "init", "--data", data, "--name", name)

    def start(self, timeout: float = 60.0) -> Station:
        cmd = [C1CLIENT, "ui", "--data", str(self.data), "--port", str(self.port),
               "--no-browser", *(() if self.sync else ("--no-sync",)), *self.extra]  # fmt: skip
        env = {**os.environ, "C1_LANG": "id"}
        err = open(self.log, "a")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        err.close()
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "... siap: http://127.0.0.1:PORT/ ..."
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if m is None:
            self.proc.wait(timeout=timeout)
            raise AssertionError(f"c1client ui did not start: {line!r}\n{self.log.read_text()}")
        self.port = int(m.group(1))
        self.url = m.group(0)
        return self

    def stop(self) -> int:
        """Ctrl-C, as an operator stops it; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=60)
        finally:
            terminate(self.proc)  # type: ignore[arg-type]
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        self.proc = None
        return code

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def close(self) -> None:
        if self.proc is not None:
            terminate(self.proc)  # type: ignore[arg-type]
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None

    # -- what the store holds (never only the page) -----------------------------------------

    def entries(self) -> list[dict[str, Any]]:
        out = run(C1CLIENT, "list", "--data", self.data, "--json").stdout
        return [json.loads(x) for x in out.splitlines() if x.strip()]

    def show(self, seq: int) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(
            run(C1CLIENT, "show", str(seq), "--data", self.data, "--json").stdout
        )
        return out


class FileChoosers:
    """The file choosers a page opens, caught for its whole life. Playwright turns Chromium's
    file-chooser interception on only while somebody waits for a chooser, and a key pressed
    before Chromium has it on opens a chooser nobody sees (the wait then times out): so the
    page is subscribed once, up front, and each ``open`` takes the next chooser."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.seen: list[Any] = []
        page.on("filechooser", lambda chooser: self.seen.append(chooser))
        page.evaluate("1")  # a round trip after the subscription

    def open(self, key: str, timeout: float = 30.0) -> Any:
        n = len(self.seen)
        self.page.keyboard.press(key)
        deadline = time.monotonic() + timeout
        while len(self.seen) == n:
            if time.monotonic() > deadline:
                raise AssertionError(f"{key} opened no file chooser in {timeout:.0f} s")
            self.page.wait_for_timeout(20)
        return self.seen[n]


def cell_values(form: dict[str, Any]) -> dict[str, str]:
    """A JSON entry's numbers as the page's cells (name = JSON path)."""
    out: dict[str, str] = {}
    for f in ("pemilih_dpt", "pengguna_dpt", "pengguna_dptb", "pengguna_dpk", "pengguna_total",
              "disabilitas"):  # fmt: skip
        for k in ("l", "p", "j"):
            if f in form:
                out[f"{f}.{k}"] = str(form[f][k])
    for k, v in form.get("surat_suara", {}).items():
        out[f"surat_suara.{k}"] = str(v)
    for no, v in form.get("suara", {}).items():
        out[f"suara.{no}"] = str(v)
    for no, p in form.get("partai", {}).items():
        out[f"partai.{no}.partai"] = str(p["partai"])
        for c, v in p["caleg"].items():
            out[f"partai.{no}.caleg.{c}"] = str(v)
        out[f"partai.{no}.jumlah"] = str(p["jumlah"])
    for f in ("sah", "tidak_sah", "total"):
        out[f] = str(form[f])
    return out


def key_cells(page: Any, values: dict[str, str], *, save: bool = True) -> int:
    """Key a whole form as an operator does: for the focused cell, type its number and press
    Enter; the page decides which cell comes next (candidate rows appear as digits are typed
    into the "+" row; Enter on an empty "+" row moves on). Returns the keystrokes pressed."""
    keys = 0
    typed: set[str] = set()
    for _ in range(2000):
        name = page.evaluate(
            "() => { const a = document.activeElement;"
            " return a && a.classList.contains('cell') ? (a.name || 'phantom:' +"
            " a.dataset.phantom) : null; }"
        )
        if name is None:
            raise AssertionError("focus left the cells")
        if name.startswith("phantom:"):
            list_name = name.split(":", 1)[1]
            nxt = _next_row(page, list_name)
            if nxt in values:
                page.keyboard.type(values[nxt])
                keys += len(values[nxt])
                typed.add(nxt)
                if typed >= values.keys():
                    break
                page.keyboard.press("Enter")
                keys += 1
                continue
            page.keyboard.press("Enter")  # no more rows in this list
            keys += 1
            continue
        if name not in values:
            raise AssertionError(f"the page asks for {name}, which the form does not have")
        page.keyboard.type(values[name])
        keys += len(values[name])
        typed.add(name)
        if typed >= values.keys():
            break  # all typed: the focus stays on the last cell
        last = page.evaluate(
            "() => { const c = [...document.querySelectorAll("
            "'#grid input.cell[name]')]; return c[c.length - 1].name; }"
        )
        if name == last:
            break
        page.keyboard.press("Enter")
        keys += 1
    if save:
        page.keyboard.press("Control+Enter")
        keys += 1
    return keys


def _next_row(page: Any, list_name: str) -> str:
    label_no = page.evaluate(
        "(l) => { const rows = [...document.querySelectorAll("
        "`#grid tbody[data-list='${l}'] input.cell[name]`)]"
        ".map(i => i.name).filter(n => /\\.\\d+$/.test(n) && !n.endsWith('.partai')"
        " && !n.endsWith('.jumlah'));"
        " const nums = rows.map(n => +n.split('.').pop());"
        " return nums.length ? Math.max(...nums) + 1 : 1; }",
        list_name,
    )
    return f"suara.{label_no}" if list_name == "suara" else f"{list_name}.caleg.{label_no}"


def main_py() -> str:
    return sys.executable
