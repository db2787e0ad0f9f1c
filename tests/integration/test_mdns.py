"""Finding the hub by mDNS with real processes: zeroconf bound to 127.0.0.1 only, so nothing
leaves the machine. Other tests on this host may advertise hubs on loopback at the same time:
these hubs' names sort first (the laptop tries hubs in name order before it has pinned one),
and every check names the hub it expects."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.integration.procs import C1CLIENT, C1HUB, HubProc, Procs, run, run_json

LO = "127.0.0.1"
MDNS = ("--mdns", "--mdns-interface", LO)

pytestmark = pytest.mark.mdns


@pytest.fixture(autouse=True)
def loopback_multicast() -> None:
    """Skip, saying why, where the loopback interface cannot join a multicast group."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        group = socket.inet_aton("224.0.0.251") + socket.inet_aton(LO)
        try:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group)
        except OSError as exc:
            pytest.skip(f"loopback cannot join the mDNS group here ({exc})")


def _start_advertised(hub: HubProc) -> HubProc:
    mark = len(hub.log_text())
    hub.start()
    # Registration (probing) is done once the hub logs it.
    hub.wait_log(f"{hub.node_id}._c1hub._tcp.local. on {LO} port {hub.port}", after=mark)
    return hub


def _enter(procs: Procs, data: Path, count: int, seed: int) -> None:
    forms = procs.tmp / f"forms-{seed}.jsonl"
    forms.write_text(run(C1CLIENT, "generate", "--count", str(count), "--seed", str(seed)).stdout)
    run(C1CLIENT, "enter", "--data", data, forms)


def _sync(data: Path, *, check: bool = True) -> Any:
    """``c1client sync --once`` with NO --hub: mDNS on loopback, then the cached address."""
    return run(C1CLIENT, "sync", "--data", data, "--once", "--mdns-interface", LO, "--json",
               check=check)  # fmt: skip


def _head(hub: HubProc, node_id: str) -> int | None:
    """How far the hub holds the laptop's log (None: the laptop is unknown there)."""
    rows = run_json(C1HUB, "devices", "--data", hub.data)
    row = next((d for d in rows if d["id"] == node_id), None)
    return None if row is None else int(row["head"])


def test_laptop_finds_its_hub_by_mdns_refuses_another_and_falls_back(procs: Procs) -> None:
    first = procs.hub("hub1", display_name="!c1 mdns first", extra=MDNS)
    _start_advertised(first)
    lap = procs.laptop("laptop")
    node_id = run_json(C1CLIENT, "status", "--data", lap)["node_id"]
    _enter(procs, lap, 20, seed=1)

    # Found by mDNS alone: no --hub, nothing cached yet.
    rep = json.loads(_sync(lap).stdout)
    assert rep["hub"] == {"id": first.node_id, "url": first.url}
    assert rep["at_hub"] == 20 and rep["local_only"] == 0
    assert _head(first, node_id) == 20
    assert run_json(C1CLIENT, "status", "--data", lap)["hub"]["id"] == first.node_id  # pinned

    # The pinned hub is gone; another hub (other key) is advertised on the LAN.
    first.stop()
    second = _start_advertised(procs.hub("hub2", display_name="!c1 mdns second", extra=MDNS))
    _enter(procs, lap, 5, seed=2)
    p = _sync(lap, check=False)
    assert p.returncode != 0, p.stdout
    assert _head(second, node_id) is None  # not even enrolled there
    # The same other hub now answering at the laptop's last good address is refused by key.
    second.stop()
    second.port = first.port
    _start_advertised(second)
    p = _sync(lap, check=False)
    assert p.returncode != 0, p.stdout
    err = json.loads(p.stdout)["error"]
    assert "REFUSED" in err["reason"], err
    assert second.node_id in err["reason"] and first.node_id in err["reason"], err
    assert second.url in err["reason"], err
    assert _head(second, node_id) is None
    st = run_json(C1CLIENT, "status", "--data", lap)
    assert (st["hub"]["id"], st["at_hub"], st["local_only"]) == (first.node_id, 20, 5)
    second.stop()

    # The right hub is back on its old address without mDNS: the cached address still works.
    first.extra = ()  # HubProc adds --no-mdns
    first.start()
    rep = json.loads(_sync(lap).stdout)
    assert rep["hub"] == {"id": first.node_id, "url": first.url}
    assert rep["pushed"] == 5 and rep["at_hub"] == 25
    assert _head(first, node_id) == 25
