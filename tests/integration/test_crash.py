"""``kill -9`` in the middle of work: nothing acknowledged is lost, nothing is doubled.

The hub is killed three times while a laptop pushes 5,000 entries; the laptop is killed while
it saves a large file. Everything runs as real processes on 127.0.0.1.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.procs import (
    C1CLIENT,
    C1HUB,
    Procs,
    kill9,
    laptop_public,
    run,
    run_json,
    wait_for,
)

TOTAL = 5000


def _offline_head(hub_data: Path, node_id: str) -> tuple[int, int]:
    """(head seq, entries stored) for one device, read from the hub's store while no hub
    serves it (``c1hub devices`` opens the store itself, recovering its WAL)."""
    rows = run_json(C1HUB, "devices", "--data", hub_data)
    row = next(r for r in rows if r["id"] == node_id)
    return row["head"], row["entries"]


def test_hub_killed_three_times_while_a_laptop_pushes(procs: Procs) -> None:
    hub = procs.hub("hub").start()
    lap = procs.laptop("laptop")
    forms = procs.tmp / "forms.jsonl"
    forms.write_text(run(C1CLIENT, "generate", "--count", str(TOTAL), "--seed", "11").stdout)
    run(C1CLIENT, "enter", "--data", lap, forms)
    origin = laptop_public(lap)
    node_id = run_json(C1CLIENT, "status", "--data", lap)["node_id"]

    # Continuous sync in small batches, so the push is still running when the hub dies; it
    # retries with backoff while the hub is down and carries on when the hub is back. After
    # the second crash the laptop's sync is restarted too (a fresh process asks the hub what it
    # holds and resumes from there; it also keeps the growing backoff of one process from
    # making this test slow).
    log = procs.tmp / "sync.log"
    sync_cmd = (C1CLIENT, "sync", "-v", "--data", lap, "--hub", hub.url, "--batch", "10")
    sync = procs.spawn(*sync_cmd, log=log)

    def hub_holds(n: int) -> bool:
        assert sync.poll() is None, log.read_text()
        return int(hub.head(origin)["seq"]) >= n

    for target, restart_sync in ((1000, False), (2500, True), (4000, False)):
        wait_for(lambda t=target: hub_holds(t), 180, f"hub to hold {target}", interval=0.02)
        hub.kill9()
        # With the hub dead its store cannot change and it can issue no receipt, so whatever
        # the laptop holds a receipt for must already be on the hub's disk.
        held, stored = _offline_head(hub.data, node_id)
        if restart_sync:
            sync.terminate()
            sync.wait(timeout=30)
        receipts = run_json(C1CLIENT, "status", "--data", lap)["at_hub"]
        assert target <= held < TOTAL, f"the kill should land mid-push (hub held {held})"
        assert stored == held, "the hub's log for the laptop must be contiguous from seq 1"
        assert receipts <= held, f"laptop has a receipt for {receipts}, hub holds only {held}"
        hub.start()  # same data folder, same port
        if restart_sync:
            sync = procs.spawn(*sync_cmd, log=log)

    wait_for(lambda: hub_holds(TOTAL), 180, "hub to hold every entry")
    wait_for(lambda: run_json(C1CLIENT, "status", "--data", lap)["at_hub"] == TOTAL, 120,
             "the laptop to hold a receipt for every entry")  # fmt: skip
    sync.terminate()
    sync.wait(timeout=30)

    s = run_json(C1HUB, "status", "--data", hub.data)
    assert s["entries"]["total"] == TOTAL  # exactly: nothing lost, nothing stored twice
    (dev,) = run_json(C1HUB, "devices", "--data", hub.data)
    assert (dev["id"], dev["head"], dev["entries"], dev["forked"]) == (node_id, TOTAL, TOTAL, False)
    st = run_json(C1CLIENT, "status", "--data", lap)
    assert (st["entries"], st["at_hub"], st["local_only"]) == (TOTAL, TOTAL, 0)

    # Another round finds nothing to send and changes nothing.
    again = json.loads(
        run(C1CLIENT, "sync", "--data", lap, "--hub", hub.url, "--once", "--json").stdout
    )
    assert again["pushed"] == 0 and again["at_hub"] == TOTAL
    (dev,) = run_json(C1HUB, "devices", "--data", hub.data)
    assert (dev["head"], dev["entries"]) == (TOTAL, TOTAL)


def test_laptop_killed_while_saving_keeps_a_contiguous_verified_log(procs: Procs) -> None:
    lap = procs.laptop("laptop")
    count = 20_000
    forms = procs.tmp / "forms.jsonl"
    forms.write_text(run(C1CLIENT, "generate", "--count", str(count), "--seed", "5").stdout)
    lines = forms.read_text().splitlines()

    enter = procs.spawn(C1CLIENT, "enter", "--data", lap, "--batch-size", "20", forms,
                        log=procs.tmp / "enter.log")  # fmt: skip

    def has_saved(n: int) -> bool:
        assert enter.poll() is None, "enter ended before it could be killed"
        return int(run_json(C1CLIENT, "status", "--data", lap)["entries"]) >= n

    wait_for(lambda: has_saved(2000), 120, "enter to save its first entries", interval=0.05)
    kill9(enter)

    v = run_json(C1CLIENT, "verify", "--data", lap)
    assert v["ok"] is True and v["problems"] == []
    saved = v["entries"]
    assert 2000 <= saved < count and v["last_seq"] == saved
    listed = [
        json.loads(line)
        for line in run(C1CLIENT, "list", "--data", lap, "--json").stdout.splitlines()
    ]
    assert [e["seq"] for e in listed] == list(range(1, saved + 1))  # no holes
    # What was saved is exactly the start of the file, in order: no entry lost in between.
    assert [e["tps"] for e in listed] == [json.loads(x)["tps"] for x in lines[:saved]]

    # The log carries on after the crash: the next entries follow the last one saved.
    rest = procs.tmp / "rest.jsonl"
    rest.write_text("\n".join(lines[saved : saved + 10]) + "\n")
    out = json.loads(run(C1CLIENT, "enter", "--data", lap, "--json", rest).stdout)
    assert [s["seq"] for s in out["saved"]] == list(range(saved + 1, saved + 11))
    v = run_json(C1CLIENT, "verify", "--data", lap)
    assert v["ok"] is True and v["entries"] == v["last_seq"] == saved + 10
