"""Advertise the hub on the LAN as a DNS-SD service (``_c1hub._tcp.local.``) with zeroconf.

This module advertises and nothing else: names and TXT keys live in
``hub.protocol.discovery_names``, shared with the laptops' browser.

Registration probes the network for name conflicts first, which takes about 1.2 s, so the hub
should not wait for it: run :meth:`Advertiser.start_with_retry` (or :meth:`Advertiser.start`)
as a background task once the HTTP server is up, and call :meth:`Advertiser.stop` at
shutdown, which also cancels a start still in progress. Laptops that browse meanwhile retry or
use their cached address.

Interfaces: ``None`` binds to every interface (zeroconf's ``InterfaceChoice.All``) and
advertises the machine's non-loopback IPv4 addresses; a list such as ``["127.0.0.1"]`` binds
to exactly those addresses and advertises exactly them. IPv4 only.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import socket
from types import TracebackType
from typing import Self

from zeroconf import InterfaceChoice, IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from hub.protocol.discovery_names import SERVICE_TYPE, build_txt, host_name, instance_name
from hub.shared.netif import check_local, lan_addresses

log = logging.getLogger(__name__)


class NoLanAddressError(OSError):
    """``interfaces=None`` but the machine has no non-loopback IPv4 address (yet)."""


class Advertiser:
    """One hub's DNS-SD advertisement. ``async with Advertiser(...)`` or start()/stop().

    ``node_id`` must be the fingerprint of ``public_key`` (checked here, so a misconfigured
    hub fails at construction rather than advertising a record every browser rejects).
    """

    def __init__(
        self,
        name: str,
        node_id: str,
        public_key: bytes,
        port: int,
        role: str = "hub",
        interfaces: list[str] | None = None,
    ) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"port must be 1..65535, got {port}")
        self._txt = build_txt(node_id=node_id, public=public_key, role=role, name=name)
        self._name = instance_name(name, node_id)
        self._node_id = node_id
        self._port = port
        if interfaces is not None and not interfaces:
            raise ValueError("interfaces must be None (every interface) or a non-empty list")
        self._interfaces = list(interfaces) if interfaces is not None else None
        self._aiozc: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None
        self._starting: asyncio.Task[object] | None = None
        self._retrying: asyncio.Task[object] | None = None
        self._announcing: asyncio.Future[object] | None = None
        self._warned: set[int] = set()

    @property
    def registered(self) -> bool:
        return self._info is not None

    @property
    def service_name(self) -> str:
        """The instance name as registered (zeroconf renames it on a conflict)."""
        return self._info.name if self._info is not None else self._name

    def addresses(self) -> list[str]:
        """The IPv4 addresses to advertise, following the interface choice."""
        if self._interfaces is not None:
            return list(self._interfaces)
        found = lan_addresses()
        if not found:
            raise NoLanAddressError(errno.ENETDOWN, "no non-loopback IPv4 address to advertise")
        return found

    async def start(self) -> None:
        """Register the service; return once probing is done (~1.2 s).

        Raises OSError if the interfaces cannot be bound (an address that is not this
        machine's, no LAN address yet, no multicast). Calling it again while registered does
        nothing.
        """
        if self._info is not None:
            return
        if self._starting is not None and not self._starting.done():
            raise RuntimeError("Advertiser.start() is already running")
        addresses = self.addresses()
        check_local(addresses)
        choice = self._interfaces if self._interfaces is not None else InterfaceChoice.All
        info = AsyncServiceInfo(
            SERVICE_TYPE,
            self._name,
            addresses=[socket.inet_aton(a) for a in addresses],
            port=self._port,
            properties=self._txt,
            server=host_name(self._node_id),
        )
        self._starting = asyncio.current_task()
        try:
            aiozc = AsyncZeroconf(interfaces=choice, ip_version=IPVersion.V4Only)
            self._aiozc = aiozc
            try:
                announcing = await aiozc.async_register_service(info, allow_name_change=True)
            except BaseException:
                self._aiozc = None
                await aiozc.async_close()
                raise
        finally:
            self._starting = None
        self._info = info
        # zeroconf repeats the announcement twice more over ~0.5 s; stop() cancels what is left.
        self._announcing = asyncio.ensure_future(announcing)
        if info.name != self._name:
            log.warning(
                "another responder on this network already advertises %r; advertising as %r "
                "(is a copy of this hub's key running elsewhere?)",
                self._name,
                info.name,
            )
        log.info("advertising %s on %s port %d", info.name, ", ".join(addresses), self._port)

    async def start_with_retry(self, *, first_delay: float = 1.0, max_delay: float = 60.0) -> None:
        """start(), retrying network errors with capped exponential backoff and full jitter.

        Meant to run as a background task: it returns once registered, or when cancelled
        (stop() cancels it). The first failure of a kind is logged as a warning, repeats at
        debug, so a hub whose Wi-Fi is down does not flood its log.
        """
        self._retrying = asyncio.current_task()
        delay = first_delay
        try:
            while True:
                try:
                    await self.start()
                except OSError as exc:
                    key = exc.errno or 0
                    level = logging.DEBUG if key in self._warned else logging.WARNING
                    self._warned.add(key)
                    log.log(level, "mDNS advertising failed, will retry: %s", exc)
                    await asyncio.sleep(random.uniform(0, delay))
                    delay = min(delay * 2, max_delay)
                else:
                    self._warned.clear()
                    return
        finally:
            self._retrying = None

    async def stop(self) -> None:
        """Send goodbye packets and close the sockets. Safe to call at any time, twice."""
        current = asyncio.current_task()
        for task in (self._retrying, self._starting):
            if task is not None and task is not current and not task.done():
                task.cancel()
                await asyncio.wait([task])
        aiozc, info, announcing = self._aiozc, self._info, self._announcing
        self._aiozc = self._info = self._announcing = None
        if announcing is not None and not announcing.done():
            announcing.cancel()
            await asyncio.wait([announcing])
        if aiozc is None:
            return
        try:
            if info is not None:
                await (await aiozc.async_unregister_service(info))
                log.info("stopped advertising %s", info.name)
        except Exception as exc:  # shutdown goes on: the goodbye is a courtesy, TTLs expire
            log.warning("could not send the mDNS goodbye for %s: %s", info and info.name, exc)
        finally:
            await aiozc.async_close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
