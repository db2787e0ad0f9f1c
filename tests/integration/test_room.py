"""A hub and laptops as real processes: counts equal what was entered, exactly; enrollment
shows the same comparison code on both sides; one hub per data folder."""

from __future__ import annotations

import json
import re

from tests.integration.procs import C1CLIENT, C1HUB, Procs, free_port, run, run_json


def test_hub_and_three_laptops(procs: Procs) -> None:
    hub = procs.hub("hub").start()
    laptops = [procs.laptop(f"laptop{i}") for i in range(3)]
    entered = 0
    for i, data in enumerate(laptops):
        gen = run(C1CLIENT, "generate", "--count", str(40 + 10 * i), "--seed", str(i + 1),
                  "--mistakes", "0.2")  # fmt: skip
        (data.parent / f"forms{i}.jsonl").write_text(gen.stdout)
        run(C1CLIENT, "enter", "--data", data, data.parent / f"forms{i}.jsonl")
        entered += 40 + 10 * i
        run(C1CLIENT, "sync", "--data", data, "--hub", hub.url, "--once")
    devices = run_json(C1HUB, "devices", "--data", hub.data)
    assert sorted(d["state"] for d in devices) == ["pending"] * 3
    s = run_json(C1HUB, "status", "--data", hub.data)
    assert s["entries"] == {"accepted": 0, "held": entered, "total": entered}
    for d in devices:
        run(C1HUB, "approve", "--data", hub.data, d["id"])
    s = run_json(C1HUB, "status", "--data", hub.data)
    assert s["entries"]["accepted"] == entered and s["entries"]["held"] == 0
    assert s["devices"] == {"pending": 0, "approved": 3, "revoked": 0}
    assert sum(s["tps"].values()) == entered
    for data in laptops:
        st = run_json(C1CLIENT, "status", "--data", data)
        assert st["at_hub"] == st["entries"] and st["local_only"] == 0
        assert st["hub"]["id"] == s["node_id"]


def test_pending_laptop_sees_the_same_comparison_code_as_the_hub(procs: Procs) -> None:
    hub = procs.hub("hub").start()
    lap = procs.laptop("laptop")
    forms = procs.tmp / "forms.jsonl"
    forms.write_text(run(C1CLIENT, "generate", "--count", "12", "--seed", "3").stdout)
    run(C1CLIENT, "enter", "--data", lap, forms)
    out = run(C1CLIENT, "sync", "--data", lap, "--hub", hub.url, "--once").stdout
    (dev,) = run_json(C1HUB, "devices", "--data", hub.data)
    assert dev["state"] == "pending" and dev["name"] == "laptop"
    code = dev["code"]
    assert re.fullmatch(r"\d{4} \d{4} \d{4} \d{4}", code), code
    assert "PENDING" in out and f"code: {code}." in out, out
    assert dev["id"] in out  # the laptop names itself, so the coordinator approves the right one
    rep = json.loads(
        run(C1CLIENT, "sync", "--data", lap, "--hub", hub.url, "--once", "--json").stdout
    )
    assert (rep["state"], rep["code"]) == ("pending", code)

    # The documented keys of `c1hub status --json` (docs: scripts read them).
    s = run_json(C1HUB, "status", "--data", hub.data)
    assert s["node_id"] == hub.node_id
    assert s["entries"]["accepted"] == 0 and s["entries"]["held"] == 12
    assert set(s["tps"]) >= {"single", "verified", "conflict"}
    assert sum(s["tps"][k] for k in ("single", "verified", "conflict")) == 0  # held: not counted
    assert isinstance(s["flags"], dict) and s["forks"] == 0
    assert s["devices"] == {"pending": 1, "approved": 0, "revoked": 0}

    # Right after the coordinator approves, status shows it (no stale shared copy).
    run(C1HUB, "approve", "--data", hub.data, dev["id"])
    s = run_json(C1HUB, "status", "--data", hub.data)
    assert s["devices"] == {"pending": 0, "approved": 1, "revoked": 0}
    assert s["entries"]["accepted"] == 12 and sum(s["tps"].values()) == 12


def test_second_hub_on_the_same_data_folder_refuses_to_start(procs: Procs) -> None:
    hub = procs.hub("hub").start()
    p = run(C1HUB, "serve", "--data", hub.data, "--host", "127.0.0.1", "--port", str(free_port()),
            "--no-mdns", check=False, timeout=60)  # fmt: skip
    assert p.returncode != 0
    assert "already serving" in p.stderr and str(hub.data) in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    assert hub.proc is not None and hub.proc.poll() is None  # the first one is unharmed
    assert run_json(C1HUB, "status", "--data", hub.data)["node_id"] == hub.node_id


def test_hub_on_a_port_already_taken_says_so(procs: Procs) -> None:
    hub = procs.hub("hub").start()
    other = procs.tmp / "other-hub"
    run(C1HUB, "init", "--data", other, "--name", "other")
    p = run(C1HUB, "serve", "--data", other, "--host", "127.0.0.1", "--port", str(hub.port),
            "--no-mdns", check=False, timeout=60)  # fmt: skip
    assert p.returncode != 0
    assert "address already in use" in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert hub.proc is not None and hub.proc.poll() is None
