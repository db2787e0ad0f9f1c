"""Find hubs on the LAN by browsing DNS-SD (``_c1hub._tcp.local.``) with zeroconf.

Discovery is only a hint. A TXT record is a claim anyone on the LAN can make; :func:`browse`
checks that it is well formed and speaks our protocol version, never that it is true. The
caller decides trust by checking the hub's key when it connects. Where multicast is filtered
(hotel Wi-Fi often does) browse() finds nothing and the caller falls back to a manually given
address or the last address that worked.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from dataclasses import dataclass

from zeroconf import DNSQuestionType, InterfaceChoice, IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from hub.protocol.discovery_names import SERVICE_TYPE, TxtError, parse_txt
from hub.shared.netif import check_local

log = logging.getLogger(__name__)

_warned: set[int] = set()


@dataclass(frozen=True, slots=True)
class FoundHub:
    """A hub seen on the LAN: where it says it is and what it claims to be (unverified)."""

    url: str
    """Best guess, e.g. ``http://127.0.0.1:8470``; equal to ``urls[0]``."""
    node_id: str
    public: bytes | None
    version: str
    role: str
    name: str
    urls: tuple[str, ...] = ()
    """Every advertised address as a URL, best first (try them in order)."""
    instance: str = ""
    """The DNS-SD instance name."""


def _url(address: str, port: int) -> str:
    if ":" in address:
        return f"http://[{address}]:{port}"
    return f"http://{address}:{port}"


def _ordered_addresses(addresses: list[str], loopback_first: bool) -> list[str]:
    """Usable addresses, best first: routable, then link-local, then loopback, then IPv6."""
    usable: list[tuple[int, str]] = []
    for text in addresses:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            continue
        if address.is_unspecified or address.is_multicast:
            continue
        if address.version == 6:
            if address.is_link_local:  # needs a zone index a URL cannot carry portably
                continue
            rank = 3
        elif address.is_loopback:
            rank = -1 if loopback_first else 2
        elif address.is_link_local:
            rank = 1
        else:
            rank = 0
        if text not in (a for _, a in usable):
            usable.append((rank, text))
    return [text for _, text in sorted(usable, key=lambda item: item[0])]


def _to_found(info: AsyncServiceInfo, loopback_first: bool) -> FoundHub | None:
    """The FoundHub a resolved service describes, or None (logged at debug) if unusable."""
    try:
        txt = parse_txt(info.properties)
    except TxtError as exc:
        log.debug("ignoring %s: %s", info.name, exc)
        return None
    if not info.port:
        log.debug("ignoring %s: no port", info.name)
        return None
    addresses = _ordered_addresses(info.parsed_addresses(IPVersion.All), loopback_first)
    if not addresses:
        log.debug("ignoring %s: no usable address", info.name)
        return None
    urls = tuple(_url(a, info.port) for a in addresses)
    return FoundHub(
        url=urls[0],
        node_id=txt.node_id,
        public=txt.public,
        version=txt.version,
        role=txt.role,
        name=txt.name,
        urls=urls,
        instance=info.name,
    )


def _network_error(exc: OSError) -> None:
    """Log the first failure of a kind as a warning, repeats at debug."""
    key = exc.errno or 0
    level = logging.DEBUG if key in _warned else logging.WARNING
    _warned.add(key)
    log.log(level, "mDNS browsing failed (using manual or cached hub addresses): %s", exc)


async def browse(
    *,
    interfaces: list[str] | None,
    timeout: float = 3.0,
    want_public: bytes | None = None,
) -> list[FoundHub]:
    """Browse the LAN for hubs for up to ``timeout`` seconds.

    ``interfaces`` as for the hub: None for every interface, or a list of this machine's IPv4
    addresses (``["127.0.0.1"]`` for loopback only). With ``want_public``, return as soon as a
    hub advertising that key is found; the hubs with that key come first in the result. The
    result is otherwise sorted by name and node id. Malformed advertisements and other protocol
    versions are skipped (logged at debug). A network error (no usable interface) is logged and
    gives an empty list: the caller falls back to other addresses.
    """
    if interfaces is not None and not interfaces:
        raise ValueError("interfaces must be None (every interface) or a non-empty list")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    loopback_first = interfaces is not None and all(
        ipaddress.ip_address(a).is_loopback for a in interfaces
    )
    choice = list(interfaces) if interfaces is not None else InterfaceChoice.All
    try:
        if interfaces is not None:
            check_local(interfaces)
        aiozc = AsyncZeroconf(interfaces=choice, ip_version=IPVersion.V4Only)
    except OSError as exc:
        _network_error(exc)
        return []
    _warned.clear()

    found: dict[str, FoundHub] = {}
    resolving: dict[str, asyncio.Task[None]] = {}  # the latest resolution of each name
    tasks: list[asyncio.Task[None]] = []
    wanted = asyncio.Event()

    async def resolve(name: str) -> None:
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        wait_ms = max(1.0, (deadline - loop.time()) * 1000)
        if not await info.async_request(aiozc.zeroconf, wait_ms, DNSQuestionType.QM):
            log.debug("no answer resolving %s", name)
            return
        hub = _to_found(info, loopback_first)
        if hub is None:
            found.pop(name, None)
            return
        found[name] = hub
        if want_public is not None and hub.public == want_public:
            wanted.set()

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Removed:
            found.pop(name, None)
            return
        previous = resolving.get(name)
        if previous is not None and not previous.done():
            previous.cancel()
        resolving[name] = task = loop.create_task(resolve(name), name=f"resolve {name}")
        tasks.append(task)

    # QM (multicast-response) questions: zeroconf's default QU first question asks for a
    # unicast answer to port 5353, which on a host running several mDNS stacks (the demo,
    # the tests, avahi) the kernel hands to just one of the sockets sharing that port.
    browser = AsyncServiceBrowser(
        aiozc.zeroconf, SERVICE_TYPE, handlers=[on_change], question_type=DNSQuestionType.QM
    )
    try:
        remaining = deadline - loop.time()
        if remaining > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wanted.wait(), remaining)
    finally:
        await browser.async_cancel()
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await aiozc.async_close()
        for task, result in zip(tasks, results, strict=True):
            if isinstance(result, Exception):
                log.warning("%s failed: %r", task.get_name(), result, exc_info=result)

    def order(hub: FoundHub) -> tuple[bool, str, str]:
        return (want_public is not None and hub.public != want_public, hub.name, hub.node_id)

    return sorted(found.values(), key=order)
