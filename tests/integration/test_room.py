"""A hub and three laptops as real processes: counts equal what was entered, exactly."""

from __future__ import annotations

from tests.integration.procs import C1CLIENT, C1HUB, Procs, run, run_json


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
