"""The coordinator's console in real headless Chromium against real `c1hub` processes:
approving a pending laptop, live counts without reload (events, and polling when events are
missing), a read-only console from a non-loopback address, resolving a conflict down to the
root, and the page of a room with 50,000 entries and 500 devices."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.protocol.identity import Identity
from tests.integration.procs import (
    HubProc,
    Procs,
    call_msgpack,
    enter,
    generate,
    sync,
    wait_for,
)

from . import roomfill
from .harness import CHROMIUM, chromium

TIMEOUT_MS = 30_000


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    yield p
    p.close()


def _row(page: Any, device_id: str) -> Any:
    return page.locator(f'tr[data-device-id="{device_id}"]')


def _count(page: Any, key: str) -> int:
    return int(page.locator(f'main [data-count="{key}"]').first.inner_text())


def _wait_count(page: Any, key: str, value: int) -> None:
    page.wait_for_function(
        "([k, v]) => document.querySelector(`main [data-count='${k}']`).textContent == v",
        arg=[key, str(value)],
        timeout=TIMEOUT_MS,
    )


def test_approve_a_pending_laptop_and_see_its_entries_counted(browser: Any, procs: Procs) -> None:
    hub = procs.hub("hub").start()
    laptop = procs.laptop("meja1")
    enter(laptop, generate(6, seed=3))
    sync(laptop, hub.url)  # enrolls (pending) and pushes: the entries are held
    (dev,) = hub.devices()
    page = browser.new_page()
    page.goto(hub.url + "/")
    row = _row(page, dev["id"])
    assert row.get_attribute("data-state") == "pending"
    assert row.locator("code.code").inner_text() == dev["code"]  # 16 digits, as the laptop
    assert _count(page, "held") == 6 and _count(page, "accepted") == 0
    assert page.locator('[data-mode="admin"]').is_visible()
    page.evaluate("window.notReloaded = true")
    page.keyboard.press("j")  # the first row: pending devices come first
    page.keyboard.press("a")
    dialog = page.locator("dialog#confirm")
    text = dialog.inner_text()
    assert "LAPTOP OPERATOR" in text and dev["code"] in text and dev["id"] in text
    page.keyboard.press("Enter")  # the focused "Ya, lakukan" (data-action="confirm")
    page.wait_for_selector(f'tr[data-device-id="{dev["id"]}"][data-state="approved"]',
                           timeout=TIMEOUT_MS)  # fmt: skip
    _wait_count(page, "accepted", 6)
    _wait_count(page, "held", 0)
    assert page.evaluate("window.notReloaded") is True
    assert hub.status()["entries"]["accepted"] == 6
    assert page.locator('[data-action="approve"]').count() == 0


@pytest.mark.parametrize("transport", ["events", "polling"])
def test_counts_update_live_without_reload(browser: Any, procs: Procs, transport: str) -> None:
    hub = procs.hub("hub").start()
    laptop = procs.laptop("meja1")
    enter(laptop, generate(2, seed=5))
    sync(laptop, hub.url)
    hub.approve("meja1")
    page = browser.new_page()
    if transport == "polling":  # a browser (or proxy) without server-sent events
        page.add_init_script("delete window.EventSource")
    page.goto(hub.url + "/")
    _wait_count(page, "accepted", 2)
    live = "on" if transport == "events" else "poll"
    page.wait_for_selector(f'#live[data-live="{live}"]', timeout=TIMEOUT_MS)
    page.evaluate("window.notReloaded = true")
    enter(laptop, generate(3, seed=6))
    sync(laptop, hub.url)
    _wait_count(page, "accepted", 5)
    assert _count(page, "single") == hub.status()["tps"]["single"]
    assert page.evaluate("window.notReloaded") is True
    # a new laptop appears by itself, pending, with its code
    other = procs.laptop("meja2")
    enter(other, generate(1, seed=7))
    sync(other, hub.url)
    dev = hub.device("meja2")
    assert dev is not None
    page.wait_for_selector(f'tr[data-device-id="{dev["id"]}"][data-state="pending"]',
                           timeout=TIMEOUT_MS)  # fmt: skip
    assert page.locator("#pending-alert").is_visible()
    assert page.evaluate("window.notReloaded") is True


def test_open_consoles_follow_each_push_in_counts_and_device_table(
    browser: Any, procs: Procs
) -> None:
    """Two consoles open while a laptop pushes again and again: both show each push's counts
    and the laptop's entries in the device table (a fragment the hub renders once for both),
    without reload."""
    hub = procs.hub("hub").start()
    laptop = procs.laptop("meja1")
    enter(laptop, generate(1, seed=11))
    sync(laptop, hub.url)
    hub.approve("meja1")
    dev = hub.device("meja1")
    assert dev is not None
    pages = [browser.new_page() for _ in range(2)]
    for page in pages:
        page.goto(hub.url + "/")
        page.wait_for_selector('#live[data-live="on"]', timeout=TIMEOUT_MS)
        page.evaluate("window.notReloaded = true")
    entries = f'tr[data-device-id="{dev["id"]}"] td.num'
    for n, seed in ((3, 12), (6, 13)):
        enter(laptop, generate(3, seed=seed))
        sync(laptop, hub.url)
        for page in pages:
            _wait_count(page, "accepted", n + 1)
            page.wait_for_function(
                "([sel, v]) => document.querySelector(sel).textContent == v",
                arg=[entries, str(n + 1)], timeout=TIMEOUT_MS,
            )  # fmt: skip
    assert all(page.evaluate("window.notReloaded") for page in pages)


# -- a browser that is not on the hub machine -------------------------------------------------


@contextlib.contextmanager
def other_machine(tmp: Path) -> Iterator[tuple[str, str]]:
    """Another "machine" on a private link: a network namespace joined to this one by a veth
    pair with addresses from 198.18.0.0/15 (set aside for tests, RFC 2544). Yields (the hub's
    address on the link, a chromium wrapper that runs the browser inside the namespace).
    Nothing leaves this host; everything is removed afterwards. Needs root and iproute2."""
    tag = secrets.token_hex(3)
    ns, a, b = f"c1t{tag}", f"c1t{tag}a", f"c1t{tag}b"
    net = f"198.18.{secrets.randbelow(250) + 1}.{4 * secrets.randbelow(60)}"
    base = net.rsplit(".", 1)[0]
    last = int(net.rsplit(".", 1)[1])
    hub_addr, browser_addr = f"{base}.{last + 1}", f"{base}.{last + 2}"
    steps = [
        ["ip", "netns", "add", ns],
        ["ip", "link", "add", a, "type", "veth", "peer", "name", b],
        ["ip", "link", "set", b, "netns", ns],
        ["ip", "addr", "add", f"{hub_addr}/30", "dev", a],
        ["ip", "link", "set", a, "up"],
        ["ip", "netns", "exec", ns, "ip", "addr", "add", f"{browser_addr}/30", "dev", b],
        ["ip", "netns", "exec", ns, "ip", "link", "set", b, "up"],
        ["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"],
    ]
    try:
        for step in steps:
            try:
                subprocess.run(step, check=True, capture_output=True, timeout=30)
            except (OSError, subprocess.SubprocessError) as exc:
                pytest.skip(f"!!! NOT RUN: cannot make a network namespace (root needed): {exc}")
        wrapper = tmp / "chromium-elsewhere"
        wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {ns} {CHROMIUM} "$@"\n')
        wrapper.chmod(0o755)
        yield hub_addr, str(wrapper)
    finally:
        subprocess.run(["ip", "link", "del", a], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def test_console_from_another_machine_is_read_only(chromium_ok: None, procs: Procs) -> None:
    with other_machine(procs.tmp) as (addr, elsewhere), chromium(executable=elsewhere) as browser:
        hub = procs.hub("hub", host=addr).start()
        url = hub.url
        laptop = procs.laptop("meja1")
        enter(laptop, generate(1, seed=3))
        sync(laptop, url)
        (dev,) = hub.devices()
        page = browser.new_page()
        page.goto(url + "/")
        banner = page.locator('[data-mode="read-only"]')
        assert banner.is_visible() and "HANYA BACA" in banner.inner_text()
        assert _row(page, dev["id"]).get_attribute("data-state") == "pending"
        assert page.locator('[data-action="approve"]').count() == 0
        assert page.get_attribute("body", "data-token") == ""
        # From the other machine, forged loopback Host and Origin headers change nothing:
        # the rule reads the peer's address from the connection.
        answer = page.evaluate(
            """async ([id, port]) => {
                const r = await fetch(`/console/devices/${id}/approve`, {method: "POST",
                    headers: {"X-Console-Token": "x.y"}});
                return [r.status, (await r.json()).error.code];
            }""",
            [dev["id"], hub.port],
        )
        assert answer == [403, "admin_local_only"]
        assert hub.devices()[0]["state"] == "pending"


# -- conflicts --------------------------------------------------------------------------------


def test_resolving_a_conflict_ends_verified_at_the_root(browser: Any, procs: Procs) -> None:
    root = procs.hub("root", national=True).start()
    room = procs.hub("room", extra=("--upstream", root.url)).start()
    root.approve("room")
    (line,) = generate(1, seed=11)
    form = json.loads(line)
    other = json.loads(line)
    first = sorted(other["suara"])[0]
    other["suara"][first] = (other["suara"][first] + 2) % 1000
    a, b = procs.laptop("meja1"), procs.laptop("meja2")
    enter(a, [json.dumps(form)])
    enter(b, [json.dumps(other)])
    for lap, name in ((a, "meja1"), (b, "meja2")):
        sync(lap, room.url)
        room.approve(name)
    key = f"{form['form']}:{form['tps']}"
    wait_status(room, lambda s: s["tps"]["conflict"] == 1)
    page = browser.new_page()
    page.goto(room.url + "/")
    link = page.locator(f'tr[data-conflict="{key}"] a')
    link.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("table.side", timeout=TIMEOUT_MS)
    differs = page.locator('tr[data-differs="1"] th').all_inner_texts()
    assert differs == [f"suara.{first}"]
    page.screenshot(path=str(procs.tmp / "conflict.png"))
    choose = page.locator('button[data-action="choose"]').first  # the first reading (meja1)
    chosen = choose.get_attribute("data-chosen")
    choose.focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")  # confirm
    page.wait_for_selector("[data-resolved]", timeout=TIMEOUT_MS)
    assert page.get_attribute("table.side", "data-status") == "verified"
    s = room.status()
    assert s["tps"] == {"single": 0, "verified": 1, "conflict": 0}
    coord = next(d for d in room.devices() if d["name"].startswith("Koordinator"))
    assert coord["state"] == "approved" and coord["entries"] == 1
    # the superseding entry reaches the root, which verifies it and the chain to it
    wait_status(root, lambda s: s["entries"]["accepted"] == 3 and s["tps"]["verified"] == 1)
    assert root.status()["tps"]["conflict"] == 0
    assert chosen is not None


def wait_status(hub: HubProc, ok: Any, timeout: float = 60.0) -> None:
    wait_for(lambda: ok(hub.status()), timeout, f"status of {hub.data.name}")


# -- scale ------------------------------------------------------------------------------------


def test_the_page_of_a_room_with_50000_entries_and_500_devices(browser: Any, procs: Procs) -> None:
    hub = procs.hub("hub", extra=("--approve-all",)).start()
    status, hello = call_msgpack(hub.url + "/v1/hello")
    assert status == 200
    idents = [Identity.generate() for _ in range(500)]
    roomfill.enroll_all(hub.url, hello["public"], idents)
    logs = roomfill.records(idents, 50_000)
    assert roomfill.push_all(hub.url, logs) == 50_000
    page = browser.new_page()
    page.goto(hub.url + "/")
    assert _count(page, "accepted") == 50_000
    rows = page.locator("tr[data-device-id]")
    assert rows.count() == 50  # one page of devices, not 500 rows
    assert re.search(r"\b1\D+10\b", page.locator("#devices-part .pager").inner_text())
    s = hub.status()
    assert _count(page, "conflict") == s["tps"]["conflict"] > 0
    assert page.locator("tr[data-conflict]").count() == min(50, s["tps"]["conflict"])
    page.goto(hub.url + "/?page=10")
    assert page.locator("tr[data-device-id]").count() == 50
