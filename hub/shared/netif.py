"""This machine's network interfaces, for mDNS (advertising and browsing) and for telling
laptops where the hub is."""

from __future__ import annotations

import errno
import ipaddress

import ifaddr


def lan_addresses() -> list[str]:
    """This machine's IPv4 addresses except loopback; link-local (169.254/16) ones last."""
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if not ip.is_IPv4 or not isinstance(ip.ip, str):
                continue
            address = ipaddress.IPv4Address(ip.ip)
            if address.is_loopback or address.is_unspecified or str(address) in found:
                continue
            found.append(str(address))
    return sorted(found, key=lambda a: ipaddress.IPv4Address(a).is_link_local)


def check_local(addresses: list[str]) -> None:
    """Raise OSError(EADDRNOTAVAIL) unless every address belongs to an interface of this machine.

    Checked before zeroconf opens its sockets: zeroconf 0.154 leaks its listening socket when an
    interface address cannot be bound.
    """
    local = {ip.ip for adapter in ifaddr.get_adapters() for ip in adapter.ips if ip.is_IPv4}
    missing = [a for a in addresses if a not in local]
    if missing:
        raise OSError(
            errno.EADDRNOTAVAIL,
            f"{', '.join(missing)} is not an address of this machine (see `ip -4 addr`)",
        )
