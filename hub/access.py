"""Who may make admin calls (approve, revoke): someone on the hub machine itself, never a peer
on the LAN, and never a web page from elsewhere that the coordinator's browser happens to show.

``check_local_admin(request)`` is the one locality check; every admin route calls it (through
``check_admin``) before looking at the token. It passes:

- a request on the admin socket (``DATA/admin.sock``, a Unix socket in the 0700 data folder:
  only the hub's own user reaches it; the ``c1hub`` admin commands use it);
- a TCP request whose peer, as the connection's transport gives it (never a header such as
  ``X-Forwarded-For``), is a loopback address, and which a browser could only have sent from
  a page of this hub: its ``Host`` is a loopback name (``localhost``, ``127.x.y.z``,
  ``[::1]``; anything else is DNS rebinding: a name that resolved to this machine), and its
  ``Origin`` (when sent) is the same origin, ``http://`` + that ``Host``, and its
  ``Sec-Fetch-Site`` (when sent) is ``same-origin`` or ``none``. A cross-site POST from a
  page on the Internet or the LAN is refused even though it comes from this machine.

Everything else gets 403 ``admin_local_only``. The token (``check_admin_token``) is still
required on top: other users of the hub machine reach its loopback port too.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from aiohttp import web

from hub.errors import AdminLocalOnly, HubError, Unauthorized

_FROM_HERE = "admin commands are taken only on the hub machine itself"


def is_loopback(host: str | None) -> bool:
    """``host`` is a loopback address (127.0.0.0/8, ::1, an IPv4-mapped loopback); False for
    anything else, None and names included."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def on_admin_socket(request: web.BaseRequest) -> bool:
    """The request came over a Unix socket (the hub's admin socket)."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    return sock is not None and sock.family == socket.AF_UNIX


def peer_is_loopback(request: web.BaseRequest) -> bool:
    """The TCP peer, from the transport (not from any header), is a loopback address."""
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    return isinstance(peer, tuple) and bool(peer) and is_loopback(str(peer[0]))


def _host_name(host: str) -> str:
    """The name in a ``Host`` header, without its port ("[::1]:8470" -> "::1")."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, _, _port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
    return name.rstrip(".").lower()


def loopback_host(host: str) -> bool:
    """``host`` (a Host header) names this machine without DNS: localhost or a loopback IP."""
    name = _host_name(host)
    return name == "localhost" or is_loopback(name)


def check_local_admin(request: web.BaseRequest) -> None:
    """Raise ``AdminLocalOnly`` (403 ``admin_local_only``) unless the request is local as the
    module docstring says: the admin socket, or loopback TCP not sent by a foreign web page."""
    if on_admin_socket(request):
        return
    if not peer_is_loopback(request):
        raise AdminLocalOnly(
            f"{_FROM_HERE}: run c1hub approve/revoke there (they use its admin socket)"
        )
    host = request.headers.get("Host")
    if host is not None and not loopback_host(host):
        raise AdminLocalOnly(f"{_FROM_HERE}, addressed as localhost or 127.0.0.1, not as {host!r}")
    origin = request.headers.get("Origin")
    if origin is not None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or parts.netloc != host:
            raise AdminLocalOnly(f"{_FROM_HERE}, from its own pages; not from {origin!r}")
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        raise AdminLocalOnly(f"{_FROM_HERE}, from its own pages; not from a {site} page")


def check_admin_token(request: web.BaseRequest, token: str) -> None:
    """Raise ``Unauthorized`` unless the request carries ``Authorization: Bearer <token>``."""
    got = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
    if not token or not hmac.compare_digest(got, f"Bearer {token}".encode()):
        raise Unauthorized(
            "admin commands need the hub's admin token (admin.token in its data folder); "
            "run them on the hub machine with --data"
        )


def check_admin(request: web.BaseRequest, token: Callable[[], str]) -> None:
    """An admin call: local (``check_local_admin``), then the token (read at each call, so a
    rotated token takes effect at once)."""
    check_local_admin(request)
    try:
        want = token()
    except (HubError, OSError) as exc:  # admin.token open to others, or gone
        raise Unauthorized(
            f"the hub takes no admin calls until its admin token is fixed: {exc}"
        ) from None
    check_admin_token(request, want)
