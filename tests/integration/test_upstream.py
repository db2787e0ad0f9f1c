"""Laptops -> room hub -> upstream as real processes, with the upstream misbehaving.

Each test ends by comparing sets of record hashes: what the laptops entered (``c1client
list``) against what the root stored (its hub.db, read-only). Equal sets, and as many rows as
distinct hashes, mean nothing was lost and nothing was stored twice.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

from tests.integration.procs import (
    C1HUB,
    HubProc,
    Procs,
    enter,
    generate,
    laptop_hashes,
    laptop_status,
    run_json,
    stored_hashes,
    sync,
    wait_for,
)

CHUNK = 3  # forms an operator types between two syncs


class Typist(threading.Thread):
    """One operator at one laptop: types a few forms, syncs, and again, until stopped (after
    at least ``min_rounds``). Forms come from one seeded pool, so every entry is distinct."""

    def __init__(self, data: Path, hubs: list[str], seed: int, *, min_rounds: int = 2,
                 pool: int = 240):  # fmt: skip
        super().__init__(name=f"typist-{data.name}", daemon=True)
        self.data = data
        self.hubs = hubs
        self.forms = generate(pool, seed)
        self.min_rounds = min_rounds
        self.rounds = 0
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while self.rounds < self.min_rounds or not self.halt.is_set():
                chunk = self.forms[self.rounds * CHUNK : (self.rounds + 1) * CHUNK]
                if not chunk:
                    return
                enter(self.data, chunk)
                sync(self.data, *self.hubs)
                self.rounds += 1
        except BaseException as exc:
            self.error = exc

    def finish(self) -> None:
        self.halt.set()
        self.join(timeout=240)
        assert not self.is_alive(), f"{self.name} did not stop"
        if self.error is not None:
            raise self.error


def entered_set(laptops: list[Path]) -> set[str]:
    hashes = [h for lt in laptops for h in laptop_hashes(lt)]
    assert len(hashes) == len(set(hashes))
    return set(hashes)


def assert_root_holds_exactly(root: HubProc, entered: set[str]) -> None:
    """Wait until the root holds every entered record, then check it holds nothing else and
    nothing twice."""
    wait_for(lambda: set(root.stored_hashes()) >= entered, 150, "the root to hold all")
    rows = root.stored_hashes()
    dupes = [h for h, n in Counter(rows).items() if n > 1]
    assert not dupes, f"stored twice at the root: {dupes[:5]}"
    assert set(rows) == entered, f"unexpected at the root: {sorted(set(rows) - entered)[:5]}"
    want = {"accepted": len(entered), "held": 0, "total": len(entered)}
    wait_for(lambda: root.status()["entries"] == want, 30, "the root's status to count all")
    assert root.status()["forks"] == 0


def assert_drained(hub: HubProc, confirmed: int) -> None:
    """The hub's upstream block says, eventually, that upstream holds all: nothing waits."""
    wait_for(lambda: hub.upstream()["backlog"] == 0, 150, f"{hub.data.name} backlog to drain")
    up = run_json(C1HUB, "status", "--data", hub.data)["upstream"]
    assert {"state", "backlog", "oldest_age_s", "confirmed", "rejected"} <= up.keys()
    assert up["backlog"] == 0 and up["oldest_age_s"] is None
    assert up["confirmed"] == confirmed
    assert up["rejected"] == 0
    wait_for(lambda: hub.upstream()["state"] == "up", 60, f"{hub.data.name} upstream up")


def assert_confirmed_on_laptops(laptops: list[Path], *hub_urls: str) -> None:
    """Each laptop learns, on its next sync, that upstream holds all of its entries."""
    for lt in laptops:

        def confirmed(lt: Path = lt) -> bool:
            sync(lt, *hub_urls)
            st = laptop_status(lt)
            return bool(st["confirmed_upstream"] == st["entries"] and st["local_only"] == 0)

        wait_for(confirmed, 60, f"{lt.name} to see its entries confirmed upstream")


def room(procs: Procs, upstream: str, n_laptops: int) -> tuple[HubProc, list[Path]]:
    """A room hub forwarding to ``upstream`` and its laptops, enrolled and approved there."""
    hub = procs.hub("room", extra=("--upstream", upstream)).start()
    laptops = [procs.laptop(f"laptop{i}") for i in range(n_laptops)]
    for lt in laptops:
        assert sync(lt, hub.url)["state"] == "pending"
        hub.approve(lt.name)
    return hub, laptops


def test_root_killed_and_restarted_while_laptops_sync(procs: Procs, root_db: str | None) -> None:
    root = procs.hub("root", national=True, db=root_db).start()
    hub, laptops = room(procs, root.url, 3)
    root.approve(hub.data.name)  # the hub enrolled at the root by itself
    typists = [Typist(lt, [hub.url], seed=100 + i) for i, lt in enumerate(laptops)]
    for t in typists:
        t.start()
    try:
        confirmed = 0
        for _outage in range(3):
            wait_for(lambda c=confirmed: hub.upstream()["confirmed"] > c, 120, "forwarding")
            root.kill9()
            at_kill = hub.status()["entries"]["total"]
            # Typing and syncing to the room hub go on; the hub says upstream is not up, and
            # how much waits and for how long.
            wait_for(lambda n=at_kill: hub.status()["entries"]["total"] >= n + 2 * CHUNK, 120,
                     "laptops to sync while the root is down")  # fmt: skip
            wait_for(lambda: hub.upstream()["state"] in ("down", "backoff"), 60, "down")
            up = hub.upstream()
            assert up["state"] in ("down", "backoff") and up["backlog"] > 0
            assert up["oldest_age_s"] is not None and up["oldest_age_s"] >= 0
            confirmed = up["confirmed"]
            root.start()
    finally:
        for t in typists:
            t.finish()
    entered = entered_set(laptops)
    assert len(entered) >= 3 * 2 * CHUNK
    assert_root_holds_exactly(root, entered)
    assert_drained(hub, len(entered))
    assert_confirmed_on_laptops(laptops, hub.url)
    s = root.status()
    assert s["devices"] == {"pending": 0, "approved": 4, "revoked": 0}  # the hub + 3 laptops
    assert [(h["name"], h["devices"], h["entries"]) for h in s["hubs"]] == [
        ("room", 3, len(entered))
    ]


# Each call fails with probability 0.18 (busy, reset or drop). After a failure the forwarder
# needs hello, enroll, heads and push to succeed in a row, so much higher rates make the
# backoff (capped at 30 s) dominate the run time.
FAULTS = {"p_busy": 0.06, "p_reset": 0.06, "p_drop": 0.06, "p_slow": 0.2, "slow_s": 0.4,
          "retry_after": 1}  # fmt: skip


def test_through_a_faulty_link(procs: Procs, root_db: str | None) -> None:
    root = procs.hub("root", national=True, db=root_db).start()
    proxy = procs.fault_proxy("proxy", root.url, seed=20240214, faults=FAULTS).start()
    hub, laptops = room(procs, proxy.url, 2)
    root.approve(hub.data.name)
    typists = [Typist(lt, [hub.url], seed=200 + i, min_rounds=4) for i, lt in enumerate(laptops)]
    for t in typists:
        t.start()
    seen: set[str] = set()
    try:

        def every_fault_seen() -> bool:
            seen.add(hub.upstream()["state"])
            st = proxy.stats()
            return (
                all(st["counts"][k] > 0 for k in ("busy", "reset", "drop", "slow"))
                # the dangerous one: the root committed a push, the hub never heard
                and st["paths"].get("drop", {}).get("/v1/push", 0) > 0
                and "backoff" in seen
                and all(t.rounds >= t.min_rounds for t in typists)
            )

        wait_for(every_fault_seen, 150, "every kind of fault, and the hub backing off")
    finally:
        for t in typists:
            t.finish()
    entered = entered_set(laptops)
    assert_root_holds_exactly(root, entered)  # faults still on
    assert_drained(hub, len(entered))
    assert_confirmed_on_laptops(laptops, hub.url)
    counts = proxy.stats()["counts"]
    assert min(counts[k] for k in ("busy", "reset", "drop", "slow")) >= 1
    assert counts["upstream_error"] == 0  # every failure the hub saw was one the proxy made


def tree(
    procs: Procs, root_db: str | None = None, prov_db: str | None = None
) -> tuple[HubProc, HubProc, HubProc, HubProc]:
    """root <- provincial hub <- room hubs A and B, each enrolled and approved above it."""
    root = procs.hub("root", national=True, db=root_db).start()
    prov = procs.hub("prov", extra=("--upstream", root.url), db=prov_db).start()
    root.approve("prov")
    a = procs.hub("roomA", extra=("--upstream", prov.url)).start()
    b = procs.hub("roomB", extra=("--upstream", prov.url)).start()
    prov.approve("roomA")
    prov.approve("roomB")
    return root, prov, a, b


def test_two_level_tree(procs: Procs, root_db: str | None) -> None:
    two_level_tree(procs, root_db, None)


def test_a_provincial_hub_on_postgresql_forwards_like_any_hub(procs: Procs, pg_dsn: str) -> None:
    two_level_tree(procs, None, pg_dsn)


def two_level_tree(procs: Procs, root_db: str | None, prov_db: str | None) -> None:
    root, prov, a, b = tree(procs, root_db, prov_db)
    la, lb = procs.laptop("laptopA"), procs.laptop("laptopB")
    for lt, h in ((la, a), (lb, b)):
        sync(lt, h.url)
        h.approve(lt.name)
    forms = generate(24, seed=300)
    enter(la, forms[:6])
    enter(lb, forms[6:15])
    sync(la, a.url)
    sync(lb, b.url)
    enter(la, forms[15:])
    sync(la, a.url)
    entered = entered_set([la, lb])
    assert len(entered) == 24
    assert_root_holds_exactly(root, entered)
    assert_drained(a, 15)
    assert_drained(b, 9)
    assert_drained(prov, 24)
    assert_confirmed_on_laptops([la], a.url)
    assert_confirmed_on_laptops([lb], b.url)
    for h in (prov, a, b):  # each hub learns that it was approved above it
        wait_for(lambda h=h: h.upstream()["enrollment"] == "approved", 60, f"{h.data.name} ok")
    s = root.status()
    # prov, roomA, roomB, and the laptops: approved through the chain of endorsements
    assert s["devices"] == {"pending": 0, "approved": 5, "revoked": 0}


def test_laptop_enrolled_at_two_room_hubs(procs: Procs) -> None:
    """A room with two hubs: one laptop pushes its log to both; the provincial hub hears it
    twice, the root holds each entry once."""
    root, prov, a, b = tree(procs)
    lt = procs.laptop("laptop")
    rep = sync(lt, a.url, b.url, add_hub=True)  # enrolls at both, on purpose
    assert sorted(h["state"] for h in rep["hubs"]) == ["pending", "pending"]
    a.approve(lt.name)
    b.approve(lt.name)
    forms = generate(12, seed=400)
    enter(lt, forms[:7])
    sync(lt, a.url, b.url)
    enter(lt, forms[7:])
    sync(lt, b.url, a.url)  # both pinned now: no --add-hub needed, in any order
    entered = entered_set([lt])
    for h in (a, b):  # both room hubs hold the whole log
        assert set(stored_hashes(h.data)) == entered, h.data.name
    assert_root_holds_exactly(root, entered)  # once, although it came up two ways
    for h in (a, b):
        assert_drained(h, 12)
    assert_drained(prov, 12)
    assert prov.status()["forks"] == 0
    assert_confirmed_on_laptops([lt], a.url, b.url)
