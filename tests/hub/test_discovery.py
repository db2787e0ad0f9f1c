"""The hub's DNS-SD advertiser and the laptop's browser, over real zeroconf on loopback.

Every zeroconf instance here is bound to 127.0.0.1, so no packet leaves the machine. Keys are
generated per test: concurrent runs on the same host see each other's services on loopback,
so tests look only for their own keys and never count everything they see.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import AsyncIterator

import pytest
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from client import discovery as client_discovery
from client.discovery import FoundHub, _ordered_addresses, browse
from hub.discovery import Advertiser
from hub.protocol.discovery_names import (
    MAX_LABEL_BYTES,
    SERVICE_TYPE,
    build_txt,
    host_name,
    instance_name,
)
from hub.protocol.identity import Identity
from hub.shared.netif import lan_addresses

LO = ["127.0.0.1"]
NOT_HERE = ["192.0.2.123"]  # TEST-NET-1: an address no interface of this machine has


@pytest.fixture(autouse=True)
async def no_leaks() -> AsyncIterator[None]:
    """Fail a test that leaves a task or a thread behind."""
    threads = set(threading.enumerate())
    yield
    current = asyncio.current_task()
    leftover = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert leftover == []
    assert set(threading.enumerate()) <= threads


@contextlib.asynccontextmanager
async def advertising(*advertisers: Advertiser) -> AsyncIterator[None]:
    """Start advertisers concurrently (each probes for ~1.2 s); stop them all on exit."""
    try:
        await asyncio.gather(*(adv.start() for adv in advertisers))
        yield
    finally:
        for adv in advertisers:
            await adv.stop()


@pytest.fixture
def loopback_multicast() -> None:
    """Skip, saying why, where the loopback interface cannot join a multicast group."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        group = socket.inet_aton("224.0.0.251") + socket.inet_aton("127.0.0.1")
        try:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group)
        except OSError as exc:
            pytest.skip(f"loopback cannot join the mDNS group here ({exc})")


def mine(hubs: list[FoundHub], *idents: Identity) -> dict[bytes | None, FoundHub]:
    keys = {i.public for i in idents}
    return {h.public: h for h in hubs if h.public in keys}


# --- without the network ---------------------------------------------------------------------


def test_advertiser_refuses_inconsistent_identity() -> None:
    a, b = Identity.generate(), Identity.generate()
    with pytest.raises(ValueError, match="fingerprint"):
        Advertiser("x", a.node_id, b.public, 8470, "hub", LO)
    with pytest.raises(ValueError, match="role"):
        Advertiser("x", a.node_id, a.public, 8470, "laptop", LO)
    with pytest.raises(ValueError, match="port"):
        Advertiser("x", a.node_id, a.public, 0, "hub", LO)
    with pytest.raises(ValueError, match="non-empty"):
        Advertiser("x", a.node_id, a.public, 8470, "hub", [])


def test_advertised_addresses_follow_interfaces() -> None:
    ident = Identity.generate()
    assert Advertiser("x", ident.node_id, ident.public, 1, "hub", LO).addresses() == LO
    assert all(not a.startswith("127.") for a in lan_addresses())


def test_address_order() -> None:
    addresses = ["fe80::1", "2001:db8::1", "127.0.0.1", "169.254.3.4", "10.0.0.5", "10.0.0.5"]
    assert _ordered_addresses(addresses, loopback_first=False) == [
        "10.0.0.5",
        "169.254.3.4",
        "127.0.0.1",
        "2001:db8::1",
    ]
    assert _ordered_addresses(addresses, loopback_first=True)[0] == "127.0.0.1"


async def test_start_on_foreign_address_raises_and_leaves_nothing_open() -> None:
    ident = Identity.generate()
    adv = Advertiser("x", ident.node_id, ident.public, 8470, "hub", NOT_HERE)
    with pytest.raises(OSError):
        await adv.start()
    assert not adv.registered
    await adv.stop()


async def test_retry_warns_once_then_quietly_until_stopped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ident = Identity.generate()
    adv = Advertiser("x", ident.node_id, ident.public, 8470, "hub", NOT_HERE)
    caplog.set_level(logging.DEBUG, logger="hub.discovery")
    task = asyncio.create_task(adv.start_with_retry(first_delay=0.001, max_delay=0.001))

    def failures() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "will retry" in r.getMessage()]

    while len(failures()) < 4:
        await asyncio.sleep(0.001)
    await adv.stop()
    assert task.cancelled()
    levels = [r.levelno for r in failures()]
    assert levels[0] == logging.WARNING
    assert set(levels[1:]) == {logging.DEBUG}
    assert not adv.registered


async def test_browse_network_error_gives_empty_list(caplog: pytest.LogCaptureFixture) -> None:
    client_discovery._warned.clear()
    caplog.set_level(logging.DEBUG, logger="client.discovery")
    assert await browse(interfaces=NOT_HERE, timeout=0.1) == []
    assert await browse(interfaces=NOT_HERE, timeout=0.1) == []
    levels = [r.levelno for r in caplog.records if "browsing failed" in r.getMessage()]
    assert levels == [logging.WARNING, logging.DEBUG]


# --- over loopback mDNS ----------------------------------------------------------------------


@pytest.mark.mdns
@pytest.mark.usefixtures("loopback_multicast")
async def test_advertised_hub_is_found() -> None:
    ident = Identity.generate()
    async with Advertiser("Ruang A", ident.node_id, ident.public, 8470, "hub", LO) as adv:
        assert adv.registered
        hubs = await browse(interfaces=LO, timeout=10, want_public=ident.public)
    assert hubs[0] == FoundHub(
        url="http://127.0.0.1:8470",
        node_id=ident.node_id,
        public=ident.public,
        version="1",
        role="hub",
        name="Ruang A",
        urls=("http://127.0.0.1:8470",),
        instance=instance_name("Ruang A", ident.node_id),
    )
    assert not adv.registered


@pytest.mark.mdns
@pytest.mark.slow
@pytest.mark.usefixtures("loopback_multicast")
async def test_two_hubs_and_want_public_picks_the_right_one() -> None:
    a, b = Identity.generate(), Identity.generate()
    long_name = "Hotel Borobudur, lantai 3.\nRuang rapat besar — sayap timur, meja koordinator"
    adv_a = Advertiser("Ruang A", a.node_id, a.public, 8471, "hub", LO)
    adv_b = Advertiser(long_name, b.node_id, b.public, 8472, "root", LO)
    async with advertising(adv_a, adv_b):
        everything = mine(await browse(interfaces=LO, timeout=3.0), a, b)
        only_b = await browse(interfaces=LO, timeout=10, want_public=b.public)
        only_a = await browse(interfaces=LO, timeout=10, want_public=a.public)

    assert set(everything) == {a.public, b.public}
    assert everything[a.public].url == "http://127.0.0.1:8471"
    assert everything[a.public].role == "hub"
    assert everything[b.public].url == "http://127.0.0.1:8472"
    assert everything[b.public].role == "root"
    assert everything[b.public].node_id == b.node_id
    found_name = everything[b.public].name
    assert found_name.startswith("Hotel Borobudur, lantai 3- Ruang rapat")
    assert len(found_name.encode()) <= 63
    label = everything[b.public].instance.removesuffix("." + SERVICE_TYPE)
    assert len(label.encode()) <= MAX_LABEL_BYTES

    assert only_b[0].public == b.public and only_b[0].url == "http://127.0.0.1:8472"
    assert only_a[0].public == a.public and only_a[0].url == "http://127.0.0.1:8471"


@pytest.mark.mdns
@pytest.mark.slow
@pytest.mark.usefixtures("loopback_multicast")
async def test_stopped_hub_is_no_longer_found() -> None:
    gone, stays = Identity.generate(), Identity.generate()
    adv_gone = Advertiser("Gone", gone.node_id, gone.public, 8473, "hub", LO)
    adv_stays = Advertiser("Stays", stays.node_id, stays.public, 8474, "hub", LO)
    async with advertising(adv_gone, adv_stays):
        before = mine(await browse(interfaces=LO, timeout=3.0), gone, stays)
        await adv_gone.stop()
        await adv_gone.stop()  # twice is harmless
        after = mine(await browse(interfaces=LO, timeout=3.0), gone, stays)
    assert set(before) == {gone.public, stays.public}
    assert set(after) == {stays.public}  # the browse worked: it still found the other hub


@pytest.mark.mdns
@pytest.mark.slow
@pytest.mark.usefixtures("loopback_multicast")
async def test_malformed_services_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    good, bad = Identity.generate(), Identity.generate()
    txt = build_txt(node_id=bad.node_id, public=bad.public, role="hub", name="bad")
    wrong_id = Identity.generate().node_id
    raw_records: dict[str, bytes | dict[str, str]] = {
        "truncated": b"\x40v=1",  # length byte says 64, 3 bytes follow
        "no-version": {k: v for k, v in txt.items() if k != "v"},
        "version-2": {**txt, "v": "2"},
        "wrong-id": {**txt, "id": wrong_id},
        "bad-key": {**txt, "pk": "zz" * 32},
        "empty": b"",
    }
    infos = [
        AsyncServiceInfo(
            SERVICE_TYPE,
            f"c1hub {label} {bad.node_id}.{SERVICE_TYPE}",
            addresses=[socket.inet_aton("127.0.0.1")],
            port=9000 + n,
            properties=props,
            server=host_name(bad.node_id),
        )
        for n, (label, props) in enumerate(raw_records.items())
    ]
    caplog.set_level(logging.DEBUG, logger="client.discovery")
    async with (
        AsyncZeroconf(interfaces=LO, ip_version=IPVersion.V4Only) as raw,
        Advertiser("Good", good.node_id, good.public, 8475, "hub", LO),
    ):
        announcing = [
            await raw.async_register_service(info, cooperating_responders=True) for info in infos
        ]
        await asyncio.gather(*announcing)
        hubs = await browse(interfaces=LO, timeout=3.0)
        wanted_bad = await browse(interfaces=LO, timeout=1.0, want_public=bad.public)

    assert good.public in {h.public for h in hubs}
    assert not [h for h in hubs + wanted_bad if h.public == bad.public or "bad" in h.instance]
    ignored = "\n".join(r.getMessage() for r in caplog.records if "ignoring" in r.getMessage())
    for label in raw_records:
        assert f"c1hub {label} {bad.node_id}" in ignored


@pytest.mark.mdns
@pytest.mark.slow
@pytest.mark.usefixtures("loopback_multicast")
async def test_same_key_twice_is_renamed_not_refused(caplog: pytest.LogCaptureFixture) -> None:
    ident = Identity.generate()
    first = Advertiser("Twin", ident.node_id, ident.public, 8476, "hub", LO)
    second = Advertiser("Twin", ident.node_id, ident.public, 8477, "hub", LO)
    caplog.set_level(logging.WARNING, logger="hub.discovery")
    async with first, second:
        assert first.service_name == instance_name("Twin", ident.node_id)
        assert second.service_name == f"c1hub Twin {ident.node_id}-2.{SERVICE_TYPE}"
        hubs = [h for h in await browse(interfaces=LO, timeout=3.0) if h.public == ident.public]
    assert sorted(h.url for h in hubs) == ["http://127.0.0.1:8476", "http://127.0.0.1:8477"]
    assert any("copy of this hub's key" in r.getMessage() for r in caplog.records)


@pytest.mark.mdns
@pytest.mark.usefixtures("loopback_multicast")
async def test_stop_or_cancel_during_probing_closes_everything() -> None:
    ident = Identity.generate()
    adv = Advertiser("x", ident.node_id, ident.public, 8478, "hub", LO)
    task = asyncio.create_task(adv.start_with_retry())
    await asyncio.sleep(0.3)  # probing takes over a second
    await adv.stop()
    assert task.cancelled() and not adv.registered

    task = asyncio.create_task(adv.start())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not adv.registered
    await adv.stop()
    # the advertiser is reusable after an interrupted start
    async with adv:
        hubs = await browse(interfaces=LO, timeout=10, want_public=ident.public)
    assert hubs[0].url == "http://127.0.0.1:8478"
