"""A laptop's data folder copied to a second machine (a fork), and a revoked laptop, against a
real hub process on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

from tests.integration.procs import (
    C1CLIENT,
    C1HUB,
    Procs,
    call_msgpack,
    get_json,
    run,
    run_json,
    wait_for,
)


def _enter(procs: Procs, data: Path, count: int, seed: int) -> None:
    forms = procs.tmp / f"forms-{data.name}-{seed}.jsonl"
    forms.write_text(run(C1CLIENT, "generate", "--count", str(count), "--seed", str(seed)).stdout)
    run(C1CLIENT, "enter", "--data", data, forms)


def _raws(data: Path, after: int) -> dict[int, bytes]:
    """The signed record bytes a laptop stores after seq ``after`` (read-only)."""
    with sqlite3.connect(f"file:{data / 'client.db'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT seq, raw FROM entries WHERE seq > ? ORDER BY seq", (after,))
        return {int(seq): bytes(raw) for seq, raw in rows}


def _sync_fails(data: Path, hub_url: str) -> tuple[dict[str, str], str]:
    """``c1client sync --once`` that must fail: (the JSON error, the message on stderr)."""
    p = run(C1CLIENT, "sync", "--data", data, "--hub", hub_url, "--once", "--json", check=False)
    assert p.returncode != 0, p.stdout
    return json.loads(p.stdout)["error"], p.stderr


def test_copied_data_folder_is_a_fork_kept_as_evidence(procs: Procs) -> None:
    hub = procs.hub("hub").start()
    first = procs.laptop("laptop")
    _enter(procs, first, 50, seed=1)
    run(C1CLIENT, "sync", "--data", first, "--hub", hub.url, "--once")
    second = procs.tmp / "second-machine"
    shutil.copytree(first, second)  # same key, same log up to seq 50
    _enter(procs, first, 10, seed=2)
    _enter(procs, second, 10, seed=3)  # different forms as seq 51..60
    ours, theirs = _raws(first, 50), _raws(second, 50)
    assert ours.keys() == theirs.keys() == set(range(51, 61))
    assert all(ours[s] != theirs[s] for s in ours)

    run(C1CLIENT, "sync", "--data", first, "--hub", hub.url, "--once")
    (dev,) = run_json(C1HUB, "devices", "--data", hub.data)
    node_id, public = dev["id"], bytes.fromhex(dev["public"])
    assert (dev["head"], dev["forked"]) == (60, False)

    err, stderr = _sync_fails(second, hub.url)
    assert err["code"] == "forked" and "copied" in stderr
    # The laptop stopped on its own (the hub's copy of its entry 60 differs), and handed the
    # hub its own record first, so the hub holds the evidence without anyone's help.
    assert hub.head(public)["forked"]
    # A laptop that does not check, pushing anyway, is refused too.
    status, reply = call_msgpack(
        hub.url + "/v1/push", {"records": [theirs[s] for s in sorted(theirs)]}
    )
    assert status == 200, reply
    assert reply["accepted"] == 0, reply
    assert {r["code"] for r in reply["rejected"] + reply["forks"]} <= {"origin_forked", "fork"}

    # The hub knows: status (shared for up to a second), device list, evidence, log. The
    # laptop was never approved here, so its fork is counted apart from the room's alarm.
    wait_for(lambda: hub.status()["forks_unapproved"] >= 1, 30, "status to count the fork")
    assert hub.status()["forks"] == 0
    (dev,) = run_json(C1HUB, "devices", "--data", hub.data)
    assert dev["forked"] is True and dev["entries"] == dev["head"] == 60  # nothing dropped
    forks = get_json(hub.url + "/v1/forks")
    assert forks and all(f["device"] == node_id and f["unapproved"] for f in forks)
    assert hub.status()["forks_unapproved"] == len(forks)
    f = forks[0]
    assert 51 <= f["seq"] <= 60
    assert bytes.fromhex(f["evidence"]) == theirs[f["seq"]]  # the second machine's record ...
    assert bytes.fromhex(f["held"]) == ours[f["seq"]]  # ... and the one the hub already held
    log = hub.log_text()
    assert "FORK" in log and node_id in log

    # From now on the origin is refused, whichever copy syncs.
    _enter(procs, first, 1, seed=4)
    err, stderr = _sync_fails(first, hub.url)
    assert err["code"] == "forked" and "copied" in stderr, stderr
    h = hub.head(public)
    assert (h["seq"], h["forked"]) == (60, 1)
    # ... and it cannot be approved.
    p = run(C1HUB, "approve", "--data", hub.data, node_id, check=False)
    assert p.returncode != 0 and "fork" in p.stderr, p.stderr
    (dev,) = run_json(C1HUB, "devices", "--data", hub.data)
    assert (dev["entries"], dev["head"], dev["state"]) == (60, 60, "pending")


def test_revoked_laptop_is_refused_after_revocation_and_earlier_entries_stay(
    procs: Procs,
) -> None:
    hub = procs.hub("hub").start()
    lap = procs.laptop("laptop")
    _enter(procs, lap, 20, seed=1)
    run(C1CLIENT, "sync", "--data", lap, "--hub", hub.url, "--once")
    (dev,) = run_json(C1HUB, "devices", "--data", hub.data)
    run(C1HUB, "approve", "--data", hub.data, dev["id"])
    out = run(C1HUB, "revoke", "--data", hub.data, dev["id"]).stdout
    assert "after seq 20" in out

    _enter(procs, lap, 5, seed=2)
    p = run(C1CLIENT, "sync", "--data", lap, "--hub", hub.url, "--once", check=False)
    assert p.returncode != 0
    assert "revoked after seq 20" in p.stderr and "Re-enter them" in p.stderr, p.stderr

    s = run_json(C1HUB, "status", "--data", hub.data)
    assert s["entries"] == {"accepted": 20, "held": 0, "total": 20}
    assert sum(s["tps"].values()) == 20
    assert s["devices"] == {"pending": 0, "approved": 0, "revoked": 1}
    (dev,) = run_json(C1HUB, "devices", "--data", hub.data)
    assert (dev["state"], dev["revoked_after_seq"], dev["head"]) == ("revoked", 20, 20)
    st = run_json(C1CLIENT, "status", "--data", lap)
    assert (st["at_hub"], st["local_only"]) == (20, 5)
