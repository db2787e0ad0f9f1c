"""A rogue hub on the room's LAN whose hello never answers (finding 12): it must not stall a
laptop's sync round for the length of a full call timeout, and the laptop must say which
address failed.

The rogue is a listener on 127.0.0.1 that accepts connections and never answers; the laptop
is a real ``c1client`` given the rogue's address next to the real hub's.
"""

from __future__ import annotations

import json
import socket
import threading
import time

from tests.integration.procs import C1CLIENT, Procs, enter, generate, run, sync


class SilentListener:
    """Accepts TCP connections, reads whatever comes, never answers."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="silent-hub")
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.setblocking(False)
            self._conns.append(conn)
            self.accepted += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for c in self._conns:
            c.close()
        self.listener.close()


def test_a_silent_rogue_neither_stalls_nor_hides_in_a_sync_round(procs: Procs) -> None:
    hub = procs.hub("hub").start()
    lap = procs.laptop("laptop")
    enter(lap, generate(10, seed=21))
    sync(lap, hub.url)  # pins the real hub
    enter(lap, generate(10, seed=22))
    rogue = SilentListener()
    try:
        started = time.monotonic()
        p = run(C1CLIENT, "sync", "--data", lap, "--hub", rogue.url, "--hub", hub.url, "--once",
                "--json", check=False)  # fmt: skip
        took = time.monotonic() - started
    finally:
        rogue.close()
    assert rogue.accepted >= 1, "the laptop never tried the rogue address"
    report = json.loads(p.stdout)
    # A generous bound: the default hello timeout for candidates is 3 s (CONTRACT.md); a
    # full call timeout (30 s) is what must not happen.
    assert took < 10, f"the sync round took {took:.1f} s"
    assert report["accepted"] == 10, report
    failed = [e for e in report.get("errors", []) if e.get("url") == rogue.url]
    assert failed and failed[0]["code"] == "unreachable", report
