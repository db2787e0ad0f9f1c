"""Several receivers, one root: ``c1hub national --db`` processes sharing one PostgreSQL and
one key (docs/scaling.md "Many receivers, one database"), with room hubs forwarding the same
laptops' logs to different receivers at once, a receiver killed with SIGKILL, and the
database restarted under them.

Each test ends like test_upstream's: what the laptops entered, against what the database
holds, one row per record."""

from __future__ import annotations

import threading
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from hub.protocol import clock, codec, enroll
from hub.protocol.identity import Identity
from tests.integration.procs import (
    C1HUB,
    HubProc,
    Procs,
    call_msgpack,
    pg_fetch,
    run,
    run_json,
    sync,
    wait_for,
)
from tests.integration.test_upstream import (
    Typist,
    assert_confirmed_on_laptops,
    assert_drained,
    entered_set,
)
from tests.pg.helpers import forms, ident, sign
from tests.servers.postgres import PostgresServer


def receivers(procs: Procs, dsn: str) -> tuple[HubProc, HubProc]:
    """Two receivers of one root: the second folder holds a copy of the first's node.key."""
    a = procs.hub("recvA", national=True, db=dsn, display_name="Nasional")
    b = procs.hub("recvB", national=True, db=dsn, display_name="Nasional", same_key_as=a.data)
    assert a.node_id == b.node_id
    return a.start(), b.start()


def rooms_and_laptops(
    procs: Procs, a: HubProc, b: HubProc, n: int
) -> tuple[HubProc, HubProc, list[Path]]:
    """Room hub 1 forwards to receiver A, room hub 2 to receiver B; each is approved through
    the other receiver (one root). ``n`` laptops push their logs to both room hubs."""
    h1 = procs.hub("room1", extra=("--upstream", a.url)).start()
    h2 = procs.hub("room2", extra=("--upstream", b.url)).start()
    b.approve("room1")  # enrolled through A, approved through B: the same database
    a.approve("room2")
    laptops = [procs.laptop(f"laptop{i}") for i in range(n)]
    for lt in laptops:
        sync(lt, h1.url, h2.url, add_hub=True)
        h1.approve(lt.name)
        h2.approve(lt.name)
    return h1, h2, laptops


def typing(laptops: list[Path], h1: HubProc, h2: HubProc, seed: int) -> list[Typist]:
    """Operators typing at every laptop, each syncing to both room hubs; returns once both
    hubs forward (their typists still typing: ``finish`` each)."""
    typists = [Typist(lt, [h1.url, h2.url], seed=seed + i, min_rounds=6)
               for i, lt in enumerate(laptops)]  # fmt: skip
    for t in typists:
        t.start()
    try:
        wait_for(lambda: h1.upstream()["confirmed"] > 6 and h2.upstream()["confirmed"] > 6,
                 120, "both hubs forwarding")  # fmt: skip
    except BaseException:
        for t in typists:
            t.finish()
        raise
    return typists


def pg_heads(dsn: str) -> int:
    """Sum of the heads of every laptop's log in the database."""
    (row,) = pg_fetch(dsn, "SELECT coalesce(sum(head_seq), 0) FROM devices WHERE role = 'laptop'")
    return int(row[0])


def assert_database_holds_exactly(a: HubProc, b: HubProc, entered: set[str]) -> None:
    wait_for(lambda: set(a.stored_hashes()) >= entered, 150, "the database to hold all")
    rows = a.stored_hashes()
    dupes = [h for h, n in Counter(rows).items() if n > 1]
    assert not dupes and set(rows) == entered
    want = {"accepted": len(entered), "held": 0, "total": len(entered)}
    for r in (a, b):  # both receivers show the same root
        wait_for(lambda r=r: r.status()["entries"] == want, 30, f"{r.data.name} to count all")
        assert r.status()["forks"] == 0


def test_two_receivers_take_the_same_logs_from_two_hubs_exactly_once(
    procs: Procs, pg_dsn: str
) -> None:
    a, b = receivers(procs, pg_dsn)
    h1, h2, laptops = rooms_and_laptops(procs, a, b, 2)
    # Every admin command sees one root, whichever receiver's folder it is given.
    for r in (a, b):
        rows = run_json(C1HUB, "devices", "--data", r.data)
        assert sorted((d["name"], d["state"]) for d in rows if d["role"] == "hub") == [
            ("room1", "approved"), ("room2", "approved")
        ]  # fmt: skip
    typists = typing(laptops, h1, h2, seed=500)
    try:
        a.kill9()  # mid-push: room 1's stream stops, room 2's goes on through B
        receipted = h1.upstream()["confirmed"]  # A can give no more receipts
        assert pg_heads(pg_dsn) >= receipted, "a receipt for something not in the database"
        at_kill = h2.upstream()["confirmed"]
        wait_for(lambda: h2.upstream()["confirmed"] > at_kill, 120, "B to go on alone")
        assert h1.upstream()["confirmed"] == receipted
        a.start()
    finally:
        for t in typists:
            t.finish()
    entered = entered_set(laptops)
    assert_database_holds_exactly(a, b, entered)
    assert_drained(h1, len(entered))
    assert_drained(h2, len(entered))
    assert_confirmed_on_laptops(laptops, h1.url, h2.url)
    s = b.status()
    assert s["devices"] == {"pending": 0, "approved": 4, "revoked": 0}
    assert sorted((h["name"], h["devices"], h["entries"]) for h in s["hubs"]) == [
        ("room1", 2, len(entered)), ("room2", 2, len(entered))
    ]  # fmt: skip


def test_a_database_restart_mid_push_is_survived_without_restarting_receivers(
    procs: Procs, postgres_server: PostgresServer, pg_dsn: str
) -> None:
    a, b = receivers(procs, pg_dsn)
    h1, h2, laptops = rooms_and_laptops(procs, a, b, 2)
    typists = typing(laptops, h1, h2, seed=600)
    try:
        postgres_server.restart("immediate")  # a crash: recovery from the WAL at start
        receipted = max(h1.upstream()["confirmed"], h2.upstream()["confirmed"])
        assert pg_heads(pg_dsn) >= receipted, "a receipt for something not in the database"
        for h in (h1, h2):
            wait_for(lambda h=h, n=receipted: h.upstream()["confirmed"] > n, 150,
                     f"{h.data.name} to forward again")  # fmt: skip
    finally:
        for t in typists:
            t.finish()
    for r in (a, b):  # the same processes all along
        assert r.proc is not None and r.proc.poll() is None
    entered = entered_set(laptops)
    assert_database_holds_exactly(a, b, entered)
    assert_drained(h1, len(entered))
    assert_drained(h2, len(entered))


def _post(url: str, raw: bytes) -> Any:
    req = urllib.request.Request(url, data=raw, method="POST")
    req.add_header("Content-Type", "application/msgpack")
    with urllib.request.urlopen(req, timeout=30) as r:
        return codec.unpack(r.read(), canonical=False)


@pytest.mark.parametrize("origins", [6])
def test_a_fork_raced_through_two_receivers_is_kept_once(
    procs: Procs, pg_dsn: str, origins: int
) -> None:
    """Two copies of each laptop's log (a copied data folder), pushed at the same moment
    through two receivers by a hub both trust: one copy is stored, the other is fork evidence,
    once per laptop; the FORK alarm is raised once."""
    a, b = receivers(procs, pg_dsn)
    room = Identity.generate()
    _s, hello = call_msgpack(a.url + "/v1/hello")
    _post(a.url + "/v1/enroll", enroll.make_request(room, hello["public"], "roomX", "hub",
                                                    clock.now_s()))  # fmt: skip
    run(C1HUB, "approve", "--data", b.data, "--as", "hub", room.node_id)
    now = clock.now_s()
    jobs = []
    for i in range(origins):
        who = ident(900 + i)
        word = enroll.endorse(room, who.public, f"X{i}", "laptop", now)
        for r, seed in ((a, 1), (b, 2)):
            body = {"records": sign(who, forms(15, seed=1000 * i + seed)), "endorsements": [word]}
            jobs.append((r.url + "/v1/push", body))
    replies: list[Any] = [None] * len(jobs)

    def push(k: int) -> None:
        replies[k] = call_msgpack(*jobs[k])

    threads = [threading.Thread(target=push, args=(k,)) for k in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for k in range(len(jobs)):  # and once more each: replays change nothing
        push(k)
    assert all(status == 200 for status, _r in replies)
    (forks,) = pg_fetch(pg_dsn, "SELECT count(*), count(DISTINCT dev) FROM forks")
    assert tuple(forks) == (origins, origins)
    (rows,) = pg_fetch(pg_dsn, "SELECT count(*) FROM records")
    assert rows[0] == 15 * origins  # one copy of each log, whole
    for r in (a, b):
        wait_for(lambda r=r: r.status()["forks"] == origins, 30, "status to count the forks")
    alarms = a.log_text().count("FORK:") + b.log_text().count("FORK:")
    assert alarms == origins
